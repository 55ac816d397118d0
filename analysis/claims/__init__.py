"""Verdicts on stated claims. The claims and their decision rules are data
(configs/claims.yaml, schema in claims.schema), fixed before any result is seen; this
package only applies them, and it is the one place that decides whether a claim is
decided: the report prints these verdicts and the main job's wave planner
(study/planner.py) stops adding runs to a claim when they say it is decided.

Design: replicate k of every cell trains with seed k (common random numbers: the same
initialisation, batch order and augmentation noise in every cell), so a claim is judged
on per-seed contrasts, and seeds, not runs, are the independent units. A seed counts for a
claim once every cell the claim compares has a full-budget run (finished, or diverged)
with it; for the failure-event tests (rate_difference, rate_bound, a failure_rate
interaction) an errored run (an error file, no final report; never run again) counts too,
with its event unknown: each end of the interval is read from the worst case for that end,
the errored runs counted as failures on one side and as none on the other (Manski's
bounds, analysis.stats.sequential.mean_cs_bounded). A run may error because it failed
(missing not at random); dropping its seed would under-count exactly the failures the
claim is about, and the simulated main job then falsely excluded the tiny-eps claim's
size in 8.7% of studies where 30% of failing runs errored. PER tests skip such seeds (no
PER to bound).

Every interval is a 95% anytime-valid confidence sequence (analysis.stats.sequential: betting
CS of Waudby-Smith & Ramdas 2024, or the median CS by inverted sign tests), so verdicts
may be read after every wave of added runs without inflating their error. The CS is
hedged between an upper and a lower bettor, each a test martingale at alpha/2, so every
one-sided statement below is wrong with probability at most alpha/2, whatever the
planner does. Error control is per claim: six claims at alpha = 0.05 each are not a
family-wise 5%.

A claim names an effect (a rate difference, a difference of differences, a median steps
ratio, a rate), a "no effect" value (`null`) and the size it claims (`margin` away from
the null, `min_ratio`, `max_rate`). Verdicts are four regions that no single truth can
both reach (the CS covers the truth at every sample size with probability 1 - alpha):
  supported             the CS lies beyond the claimed size: an effect at least as large
                        as claimed (lower end above `null + margin`)
  smaller_than_claimed  the CS excludes the claimed size and excludes no effect: an effect
                        exists but is smaller than claimed
  refuted               the CS excludes the claimed size and contains no effect (or the
                        opposite effect): no effect of the claimed size, and none shown
  inconclusive          the CS contains the claimed size (the report says how many more
                        seeds the trend would need, and whether an effect is shown)
The first three are final: the planner stops serving the claim. A true effect between 0
and the margin can end SMALLER or REFUTED (both say "not of the claimed size"), never
SUPPORTED except with probability alpha/2; a true effect at the margin is REFUTED or
SMALLER with probability at most alpha/2.

`direction` says which way the claimed effect points: `increase` (null + margin),
`decrease` (null - margin), or `either` (|effect - null| >= margin; supported beyond
either side, excluded when the CS lies inside both). For `either` a false SUPPORTED can
happen on either side, each at most alpha/2, so at most alpha in all.

Tests:
  rate_difference  per seed: 1[event] at `cell` minus the same at `reference` (in
                   [-1, 1]); CS of the mean = the rate difference. An event is a final
                   outcome in `outcomes` or a latched flag in `flags` (`exploded` stays set
                   once a gradient spike was seen, whatever the run's final label).
  rate_bound       per seed: 1[event] at `cell`; CS of the rate. supported: upper end
                   below `max_rate`; refuted: lower end above it (two regions).
  steps_ratio      per seed: steps the `cell` run needs to reach `threshold_factor` x the
                   better of the two runs' final val PER, over the steps the `reference`
                   run needs; a cell run that never reaches it is infinitely slower (+inf),
                   a reference run that never does makes the ratio 0. The bar is the same
                   for both cells, so two identical cells give ratios whose median is 1 (a
                   bar from the reference's own PER could only make the cell slower).
                   Seeds where either run collapsed or diverged are skipped (no speed to
                   compare). CS of the median ratio by inverted sign
                   tests; null 1, claimed size `min_ratio` (direction increase).
  per_difference   per seed: final val PER at `cell` minus at `reference`; CS of the
                   median by inverted sign tests (a seed whose PER is missing is
                   skipped; a diverged run has the sentinel PER 10, trainable.contract).
  interaction      per seed: [y(base + change) - y(base)] minus
                   [y(base + moderator + change) - y(base + moderator)]; `endpoint`
                   failure_rate: y = 1[event] (in [-2, 2], CS of the mean), final_per:
                   y = final val PER (CS of the median, inverted sign tests).
  any_of           the claim holds if any part holds. supported: a part supported at
                   alpha/J (Bonferroni: false support of any part is a union of J errors);
                   size excluded: every part's size excluded at alpha (intersection-union:
                   a false exclusion needs the one true part to be falsely excluded);
                   effect shown: some part's effect shown at alpha/J.
  all_of           the claim holds only if every part holds. supported: every part
                   supported at alpha (intersection-union); size excluded: a part's size
                   excluded at alpha/J (Bonferroni); effect shown: every part's at alpha.

Modules: schema (the rules, a claim, the file), loader (reading a file, the registered
one by hash), cells (the runs a claim reads), evidence (a confidence sequence -> verdict,
reason, seeds to decide), effects (the five single tests), evaluate (composites, one row
per claim, verdicts over training). The names callers use are re-exported here.
"""

from analysis.claims.cells import Runs, cells_of, describe, failure_outcomes, unseen_failures
from analysis.claims.effects import (NO_DECODER, Result, interaction, paired_step_ratios,
                                     per_difference, rate_bound, rate_difference, ratio_text,
                                     steps_ratio, steps_to_reach)
from analysis.claims.evaluate import (COLUMNS, LATE_FROM, TOO_FEW, claims_over_training,
                                      evaluate_claims, evaluate_rule, held_late, runs_at_step)
from analysis.claims.evidence import (FINAL, VERDICT_WORDS, VERDICTS, Evidence, claimed_size,
                                      judge, reason_for, seeds_to_decide)
from analysis.claims.loader import (DEFAULT_CLAIMS, content_hash, load_claims, load_registered,
                                    resolve_claims_path)
from analysis.claims.schema import (RULE_TESTS, AllOf, AnyOf, Cell, Claim, ClaimsFile,
                                    Interaction, PerDifference, Primary, RateBound,
                                    RateDifference, RegimeTest, StepsRatio, primary_claim,
                                    with_primary)

__all__ = [
    "COLUMNS", "DEFAULT_CLAIMS", "FINAL", "LATE_FROM", "NO_DECODER", "RULE_TESTS", "TOO_FEW",
    "VERDICTS", "VERDICT_WORDS", "AllOf", "AnyOf", "Cell", "Claim", "ClaimsFile", "Evidence",
    "Interaction", "PerDifference", "Primary", "RateBound", "RateDifference", "RegimeTest",
    "Result", "Runs",
    "StepsRatio", "cells_of", "claimed_size", "claims_over_training", "content_hash",
    "describe", "evaluate_claims", "evaluate_rule", "failure_outcomes", "held_late",
    "interaction", "judge", "load_claims", "load_registered", "paired_step_ratios",
    "per_difference",
    "primary_claim", "rate_bound", "rate_difference", "ratio_text",
    "reason_for", "resolve_claims_path", "runs_at_step", "seeds_to_decide", "steps_ratio",
    "steps_to_reach", "unseen_failures", "with_primary",
]
