"""Where a trainer commonly differs from the official one, as config options.

Each option defaults to the official behaviour, so an official run is unchanged by their
existence; setting one reproduces a difference found in real trainers (the practitioner's
trainer the claims' diagnosis was written for did most of these; shared/design/
real_data_targets.md, "Where the practitioner's trainer differed", source S10). A `diff`
study (study/diff.py) can vary any config key; these are the ones a trainer written from
scratch most often gets different, listed by `python -m trainable --explain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainable.tree import get_dotted


@dataclass(frozen=True)
class Variant:
    key: str  # dotted config key
    official: Any  # the official trainer's behaviour (the default here)
    alternative: Any  # the common difference
    effect: str  # what the difference does, in one line
    # A key of the official rnn_args.yaml sets it (trainable.official_args.MAPPED); else
    # only this project's config can.
    official_key: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("loss.normalisation", "utterance", "label",
            "CTCLoss(reduction='mean'): each utterance's loss divided by its label count, "
            "gradients ~29x smaller on the real data (28.8 labels per sentence)"),
    Variant("loss.zero_infinity", False, True,
            "an infinite CTC loss (labels that cannot fit) becomes zero instead of stopping "
            "the run"),
    Variant("data.sampling", "days", "shuffle",
            "plain shuffling over all trials instead of days_per_batch days per batch"),
    Variant("data.extra_normalisation", "none", "global",
            "a second z-scoring of already normalised features over the training split"),
    Variant("optim.weight_decay_mode", "decoupled", "l2",
            "Adam with an L2 penalty in the gradient instead of AdamW's decoupled decay"),
    Variant("monitor.explode_norm", None, 20.0,
            "an absolute explosion alarm at a pre-clip norm of 20 (the normal official run's "
            "median is ~29): changes the labels, not the training"),
    # Already config keys with an official value; listed because trainers differ in them.
    Variant("optim.lr_warmup_steps", 1000, 2000, "a longer warm-up", official_key=True),
    Variant("data.batch_size", 64, 48, "a smaller batch", official_key=True),
)


def training_differences(cfg) -> dict[str, Any]:
    """The variants `cfg` sets away from the official behaviour that change training and
    that no rnn_args.yaml key can express (the monitor's alarm changes only labels)."""
    tree = cfg.model_dump()
    return {v.key: get_dotted(tree, v.key) for v in VARIANTS
            if not v.official_key and not v.key.startswith("monitor.")
            and get_dotted(tree, v.key) != v.official}


def explain_lines() -> list[str]:
    """One line per variant: key, official value, the common alternative, its effect."""
    return [f"{v.key}: official {v.official!r}; commonly {v.alternative!r}: {v.effect}"
            for v in VARIANTS]
