"""An articulatory phoneme code: phonemes that share articulatory features get similar
neural targets, so a decoder confuses similar phonemes, as on the real recordings (speech
motor cortex encodes articulators, and its decoders confuse phonemes of similar place and
manner; Willett et al. 2023, Nature 620:1031, S11 in real_data_targets.md).

Features are the standard ones of the ARPAbet phonemes in phonetics textbooks (e.g.
Ladefoged & Johnson, A Course in Phonetics): consonants by place, manner and voicing;
vowels by height, backness and rounding. Diphthongs are half their start vowel and half
their end vowel; W is both bilabial and velar (labial-velar); ER is a mid central vowel
with the rhotic (R-like) feature. SIL, the word boundary, is the rest posture.

    consonant  place         manner        voicing
    P B M      bilabial      stop/nasal    -/+ (M +)
    F V        labiodental   fricative     - +
    TH DH      dental        fricative     - +
    T D N      alveolar      stop/nasal    - + +
    S Z        alveolar      fricative     - +
    L          alveolar      lateral       +
    R          postalveolar  approximant   +  (rhotic)
    SH ZH      postalveolar  fricative     - +
    CH JH      postalveolar  affricate     - +
    Y          palatal       approximant   +
    W          bilabial+velar approximant  +
    K G NG     velar         stop/nasal    - + +
    HH         glottal       fricative     -

    vowel      height  backness  rounded      vowel      height    backness    rounded
    IY         high    front     no           UW         high      back        yes
    IH         high    front     no (lax)     UH         high      back        yes (lax)
    EY         mid     front     no (->IY)    OW         mid       back        yes (->UW)
    EH         mid     front     no           AO         low-mid   back        yes
    AE         low     front     no           AA         low       back        no
    AH         mid     central   no           ER         mid       central     no, rhotic
    AY         low->high  central->front      AW         low->high  central->back, ->rounded
    OY         mid->high  back->front, rounded->no

A target is the sum of its features' embeddings (each a random Gaussian vector) plus a
smaller part of its own, so P and B (differ in voicing only) are close, and P and AA
(share nothing) are far apart.
"""

from __future__ import annotations

import numpy as np

from trainable.vocab import N_CLASSES, PHONEME_TO_ID, SIL

# Half of a diphthong's weight goes to its start, half to its end.
_H = 0.5


def _consonant(place: str | dict[str, float], manner: str, voiced: bool) -> dict[str, float]:
    places = {place: 1.0} if isinstance(place, str) else place
    return {"consonant": 1.0, **places, manner: 1.0, "voiced" if voiced else "voiceless": 1.0}


def _vowel(height: str, backness: str, rounded: bool, *extra: str) -> dict[str, float]:
    return {"vowel": 1.0, "voiced": 1.0, height: 1.0, backness: 1.0,
            "rounded" if rounded else "unrounded": 1.0, **dict.fromkeys(extra, 1.0)}


def _diphthong(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    keys = start.keys() | end.keys()
    return {k: _H * start.get(k, 0.0) + _H * end.get(k, 0.0) for k in keys}


_IY = _vowel("high", "front", False, "tense")
_UW = _vowel("high", "back", True, "tense")

FEATURES: dict[str, dict[str, float]] = {
    "P": _consonant("bilabial", "stop", False),
    "B": _consonant("bilabial", "stop", True),
    "M": _consonant("bilabial", "nasal", True),
    "F": _consonant("labiodental", "fricative", False),
    "V": _consonant("labiodental", "fricative", True),
    "TH": _consonant("dental", "fricative", False),
    "DH": _consonant("dental", "fricative", True),
    "T": _consonant("alveolar", "stop", False),
    "D": _consonant("alveolar", "stop", True),
    "N": _consonant("alveolar", "nasal", True),
    "S": _consonant("alveolar", "fricative", False),
    "Z": _consonant("alveolar", "fricative", True),
    "L": _consonant("alveolar", "lateral", True),
    "R": {**_consonant("postalveolar", "approximant", True), "rhotic": 1.0},
    "SH": _consonant("postalveolar", "fricative", False),
    "ZH": _consonant("postalveolar", "fricative", True),
    "CH": _consonant("postalveolar", "affricate", False),
    "JH": _consonant("postalveolar", "affricate", True),
    "Y": _consonant("palatal", "approximant", True),
    "W": _consonant({"bilabial": _H, "velar": _H}, "approximant", True),
    "K": _consonant("velar", "stop", False),
    "G": _consonant("velar", "stop", True),
    "NG": _consonant("velar", "nasal", True),
    "HH": _consonant("glottal", "fricative", False),
    "IY": _IY,
    "IH": _vowel("high", "front", False, "lax"),
    "EY": _diphthong(_vowel("mid", "front", False), _IY),
    "EH": _vowel("mid", "front", False, "lax"),
    "AE": _vowel("low", "front", False),
    "AH": _vowel("mid", "central", False, "lax"),
    "ER": _vowel("mid", "central", False, "rhotic"),
    "AA": _vowel("low", "back", False),
    "AO": _vowel("low", "back", True),
    "OW": _diphthong(_vowel("mid", "back", True), _UW),
    "UH": _vowel("high", "back", True, "lax"),
    "UW": _UW,
    "AY": _diphthong(_vowel("low", "central", False), _IY),
    "AW": _diphthong(_vowel("low", "central", False), _UW),
    "OY": _diphthong(_vowel("mid", "back", True), _IY),
    SIL: {"rest": 1.0},
}
FEATURE_NAMES: tuple[str, ...] = tuple(sorted({f for fs in FEATURES.values() for f in fs}))


def feature_matrix() -> np.ndarray:
    """[N_CLASSES, len(FEATURE_NAMES)] feature weights; row 0 (blank) is zero."""
    out = np.zeros((N_CLASSES, len(FEATURE_NAMES)))
    for phoneme, features in FEATURES.items():
        for name, weight in features.items():
            out[PHONEME_TO_ID[phoneme], FEATURE_NAMES.index(name)] = weight
    return out


def articulatory_targets(latent_dim: int, specific_sd: float, rng: np.random.Generator
                         ) -> np.ndarray:
    """[N_CLASSES, latent_dim] targets: the sum of each phoneme's feature embeddings plus
    `specific_sd` times a phoneme-specific vector (relative to one feature's embedding),
    scaled so an entry has unit mean square over the 40 labels, as the v1 targets."""
    embeddings = rng.standard_normal((len(FEATURE_NAMES), latent_dim))
    own = rng.standard_normal((N_CLASSES, latent_dim))
    targets = feature_matrix() @ embeddings + specific_sd * own
    targets[0] = 0.0  # blank is never a label
    return targets / np.sqrt(np.mean(targets[1:] ** 2))
