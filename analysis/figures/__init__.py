"""Figures: each function takes tidy tables and returns a matplotlib Figure (Agg backend);
one module per figure family (common, cells, boundary_map, training, claim_effects), the
names callers use re-exported here.

Saving and embedding are the caller's job (analysis.report / analysis.html).
"""

import matplotlib

matplotlib.use("Agg")

from analysis.figures.boundary_map import BoundaryMapData, boundary_map, boundary_map_data
from analysis.figures.cells import (CellGrid, pair_heatmaps, per_grid, rate_grid, stable_grid,
                                    stable_map)
from analysis.figures.claim_effects import VERDICT_COLOURS, claim_axis_limits, claim_effects
from analysis.figures.common import (DPI, HATCH_NOTE, PALETTE, annotated_heatmap, run_label,
                                     save_all, stable_definition, wrap)
from analysis.figures.training import lr_sensitivity, regime_plot, training_curves

__all__ = [
    "DPI", "HATCH_NOTE", "PALETTE", "VERDICT_COLOURS", "BoundaryMapData", "CellGrid",
    "annotated_heatmap", "boundary_map", "boundary_map_data", "claim_axis_limits",
    "claim_effects", "lr_sensitivity", "pair_heatmaps", "per_grid", "rate_grid",
    "regime_plot", "run_label", "save_all", "stable_definition", "stable_grid", "stable_map",
    "training_curves", "wrap",
]
