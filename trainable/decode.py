"""CTC loss with the official reduction, greedy decoding and phoneme error rate."""

from __future__ import annotations

import editdistance
import numpy as np
import torch
import torch.nn.functional as F

from trainable.vocab import BLANK_ID


def ctc_loss_per_utterance(logits: torch.Tensor, out_lens: torch.Tensor, labels: torch.Tensor,
                           label_lens: torch.Tensor, normalisation: str = "utterance",
                           zero_infinity: bool = False) -> torch.Tensor:
    """Per-utterance CTC loss; by default a plain sum over the utterance, not divided by
    label length.

    The official trainer uses CTCLoss(blank=0, reduction='none', zero_infinity=False) and
    then torch.mean over the batch. `normalisation="label"` divides each utterance's loss
    by its label count first (clamped at 1), which is what CTCLoss(reduction='mean') does
    before its batch mean: the same minimum, but gradients smaller by the label count, so
    a different effective learning rate (config.LossConfig).
    """
    log_probs = F.log_softmax(logits.float(), dim=-1).permute(1, 0, 2)
    loss = F.ctc_loss(log_probs, labels, out_lens, label_lens, blank=BLANK_ID,
                      reduction="none", zero_infinity=zero_infinity)
    if normalisation == "label":
        loss = loss / label_lens.clamp(min=1).to(loss.dtype)
    return loss


def greedy_decode(logits: torch.Tensor, out_lens: torch.Tensor) -> list[np.ndarray]:
    """Official trainer decoding: argmax over valid frames, collapse repeats, drop blanks.

    (The separate evaluation script drops blanks before collapsing; the trainer does not,
    so A-blank-A stays A A here.)
    """
    best = logits.argmax(dim=-1).cpu()
    decoded = []
    for row, length in zip(best, out_lens.tolist(), strict=True):
        seq = torch.unique_consecutive(row[:length])
        decoded.append(seq[seq != BLANK_ID].numpy())
    return decoded


def edit_distances(decoded: list[np.ndarray], labels: torch.Tensor, label_lens: torch.Tensor
                   ) -> list[int]:
    """Levenshtein distance of each decoded sequence to its labels (SIL counts both sides)."""
    return [
        editdistance.eval(d.tolist(), labels[i, : int(label_lens[i])].tolist())
        for i, d in enumerate(decoded)
    ]


def phoneme_error_rate(distances, label_lens) -> float:
    """Micro-average: total edit distance over total reference length (official)."""
    total = int(np.sum(label_lens))
    return float(np.sum(distances)) / total if total else 0.0
