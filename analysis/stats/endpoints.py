"""What the statistics are computed on: the binary endpoints (which final outcomes count
as the event), the PER response, and the subsets of runs each is read from."""

from __future__ import annotations

import pandas as pd

from analysis.runs import full_budget
from trainable.contract import OUTCOMES

FAILURES: tuple[str, ...] = tuple(o for o in OUTCOMES if o != "stable")
# Binary endpoints: which final outcomes count as the event.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "collapse": ("blank_collapse",),
    "divergence": ("diverged", "exploding"),  # the loss or the gradient blew up
    "failure": FAILURES,  # anything but stable, `slow` included
}
ENDPOINT_TEXT = {
    "per": "final val PER (non-collapsed, non-diverged runs)",
    "collapse": "blank collapse",
    "divergence": "divergence or gradient explosion",
    "failure": "any failure (outcome not stable)",
}
# PER is compared only among runs that produced a decoder at all.
PER_EXCLUDED: tuple[str, ...] = ("blank_collapse", "diverged")
PER_COLUMN = "final_val_per"


def per_set(frame: pd.DataFrame) -> pd.DataFrame:
    sub = full_budget(frame)
    return sub[~sub["outcome"].isin(PER_EXCLUDED) & sub[PER_COLUMN].notna()]


def endpoint_indicator(frame: pd.DataFrame, endpoint: str) -> pd.Series:
    return frame["outcome"].isin(ENDPOINTS[endpoint]).astype(int)
