"""Which difference between two training configurations changes the outcome?

    python -m study.run diff --from working.yaml --to failing.yaml [--keys k1,k2] ...

Both files are read as training configs (this project's format or an official
rnn_args.yaml), resolved to full configs, and compared key by key. Every key that differs
is listed; those that set the training itself become two-level factors (level 0: the
`--from` value, level 1: the `--to` value). Keys a study sets for every trial (the budget,
the seeds, the device) are listed but are not factors.

The design, pure and fixed before any run:
  - both endpoints (every factor at 0; every factor at 1);
  - each difference alone applied to the `--from` configuration (one factor at 1), and
    each alone removed from the `--to` configuration (all at 1 but one), so a key that
    matters only together with others shows up in the second set;
  - with at most FULL_FACTORIAL_MAX factors, the full 2^k factorial (it holds all of the
    above); with up to FRACTIONAL_MAX, a 16-run two-level fractional factorial of
    resolution IV or better (main effects clear of two-factor interactions) on top.

One claim per factor and endpoint is registered before the first run: "this difference
alone changes the failure rate by at least `margin_rate`" (either direction) and the
same for the final val PER (`margin_per`). Each is an any_of over the two contexts
(applied to --from, removed from --to), judged with the project's anytime-valid
sequences (analysis/claims/), so the adaptive waves add seeds until each is decided.
Nothing here knows the Brain-to-Text keys.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainable.config import CONFIG_DIR, Config, load_config
from trainable.contract import HARD_FAILURES
from trainable.errors import ConfigError
from trainable.tree import flatten

# Keys a study sets for every trial, or that place a run rather than change its training:
# listed when they differ, never factors. Seeds are the study's replicates.
NOT_FACTORS = {
    "train.num_steps": "the study's --budget sets it for every trial",
    "train.eval_every": "the study's --budget sets it for every trial",
    "train.seed": "seeds are the study's replicates",
    "data.seed": "seeds are the study's replicates",
    "train.device": "placement, set by the study's resources",
    "train.num_threads": "placement, set by the study's resources",
    "train.compile": "speed only (the same numerics)",
    "train.cpu_path": "speed only (the same outputs to float32 rounding)",
}
# Keys that must agree: two configs that differ here do not train on the same data or
# model output and cannot be compared by swapping one key at a time.
MUST_MATCH = {
    "data.n_features": "the two configs read data with different feature counts",
    "data.sessions": "the two configs train on different sessions",
    "model.n_classes": "the two configs decode different vocabularies",
}
FULL_FACTORIAL_MAX = 4
FRACTIONAL_MAX = 8
# 16-run two-level fractional factorials (base factors A-D, the added factors' generators;
# Box, Hunter & Hunter 2005, Table 6.22): 2^(5-1) V (E=ABCD), 2^(6-2) IV, 2^(7-3) IV,
# 2^(8-4) IV.
GENERATORS = {
    5: ["ABCD"],
    6: ["ABC", "BCD"],
    7: ["ABC", "BCD", "ACD"],
    8: ["BCD", "ACD", "ABC", "ABD"],
}


@dataclass(frozen=True)
class Difference:
    key: str
    before: Any  # the --from value (level 0)
    after: Any  # the --to value (level 1)
    factor: str  # axis name of the factor ("" when the key is not a factor)
    why_not: str = ""  # why a listed key is not a factor

    def line(self) -> str:
        tail = f"  (not a factor: {self.why_not})" if self.why_not else ""
        return f"{self.key}: {self.before!r} -> {self.after!r}{tail}"


DAY_KEYS = ("lr_max_day", "lr_min_day", "lr_warmup_steps_day", "lr_decay_steps_day")


def _effective(cfg: Config, other: Config) -> dict[str, Any]:
    """A config's keys with the values training uses, for comparing with `other`: a
    day-layer schedule key left unset follows the main schedule, so an rnn_args.yaml that
    repeats the main values under lr_max_day etc. does not differ from a config that leaves
    them unset. Unset in both, a day key follows each config's main key and is no
    difference of its own."""
    flat = flatten(cfg.model_dump(mode="json"))
    effective = dict(zip(DAY_KEYS, cfg.optim.day_schedule(), strict=True))
    for key in DAY_KEYS:
        if getattr(cfg.optim, key) is not None or getattr(other.optim, key) is not None:
            flat[f"optim.{key}"] = effective[key]
    return flat


def _factor_names(keys: list[str]) -> dict[str, str]:
    """Axis names: a key's last part, the full key (dots as underscores) where two
    factors share a last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k.replace(".", "_"))
            for k, short in zip(keys, last, strict=True)}


def differences(before: Config, after: Config, keys: list[str] | None = None
                ) -> list[Difference]:
    """Every resolved key whose value differs, in config order; `keys` restricts the
    factors (a key named there that does not differ, or does not exist, is an error)."""
    a, b = _effective(before, after), _effective(after, before)
    if keys is not None:
        unknown = [k for k in keys if k not in a]
        if unknown:
            raise ConfigError(f"--keys: {', '.join(unknown)} is not a training config key")
        same = [k for k in keys if a[k] == b[k]]
        if same:
            raise ConfigError(f"--keys: {', '.join(same)} has the same value in both "
                              "configs; name keys that differ")
    for key, why in MUST_MATCH.items():
        if a[key] != b[key]:
            raise ConfigError(f"cannot compare: {key} is {a[key]!r} in --from and "
                              f"{b[key]!r} in --to ({why}); make them equal")
    differing = [k for k in a if a[k] != b[k]]
    factors = [k for k in differing if k not in NOT_FACTORS and (keys is None or k in keys)]
    names = _factor_names(factors)
    out = []
    for key in differing:
        why = NOT_FACTORS.get(key, "")
        if not why and key not in names:
            why = "left out by --keys"
        out.append(Difference(key, a[key], b[key], names.get(key, ""), why))
    if not names:
        raise ConfigError("nothing to study: the two configs differ in no key that sets "
                          "the training" + (" among --keys" if keys else "")
                          + "; check that --from and --to are the two runs to compare")
    return out


def factors_of(diffs: list[Difference]) -> list[Difference]:
    return [d for d in diffs if d.factor]


def fractional_factorial(k: int) -> list[tuple[int, ...]]:
    """The 16 runs of the 2^(k-p) design for 5 <= k <= 8 (levels 0/1; generator columns
    are the parity of their base columns, i.e. products in the -1/+1 coding)."""
    rows = []
    for base in itertools.product((0, 1), repeat=4):
        levels = dict(zip("ABCD", base, strict=True))
        extra = [_product(levels, word) for word in GENERATORS[k]]
        rows.append(tuple(base) + tuple(extra))
    return rows


def _product(levels: dict[str, int], word: str) -> int:
    """The generator column in 0/1 coding: the product of the base columns in -1/+1
    coding, mapped back (+1 -> 1, -1 -> 0)."""
    sign = 1
    for column in word:
        sign *= 1 if levels[column] else -1
    return 1 if sign > 0 else 0


def design(k: int) -> list[tuple[int, ...]]:
    """The design points (level 0/1 per factor), each once, endpoints first."""
    if k < 1:
        raise ValueError("a design needs at least one factor")
    points = [(0,) * k, (1,) * k]
    points += [tuple(int(j == i) for j in range(k)) for i in range(k)]
    points += [tuple(int(j != i) for j in range(k)) for i in range(k)]
    if k <= FULL_FACTORIAL_MAX:
        points += list(itertools.product((0, 1), repeat=k))
    elif k <= FRACTIONAL_MAX:
        points += fractional_factorial(k)
    unique: list[tuple[int, ...]] = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique




def claim_id(factor: str, endpoint: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{factor}_changes_{endpoint}")


def claims_tree(factors: list[Difference], margin_rate: float = 0.25,
                margin_per: float = 0.02) -> dict:
    """The claims file of a diff study (analysis/claims/ schema): per factor, "this
    difference alone changes the failure rate by >= margin_rate" and "... the final val
    PER by >= margin_per", either way, in either context."""
    names = [f.factor for f in factors]
    working = {n: 0 for n in names}
    failing = {n: 1 for n in names}
    claims = []
    for f in factors:
        added = working | {f.factor: 1}
        removed = failing | {f.factor: 0}
        contexts = [(added, working), (failing, removed)]
        claims.append({
            "id": claim_id(f.factor, "failure_rate"),
            "text": f"{f.key} {f.before!r} -> {f.after!r} alone changes the failure rate "
                    f"by at least {margin_rate:g}",
            "test": "any_of",
            "parts": [{"test": "rate_difference", "outcomes": list(HARD_FAILURES),
                       "flags": ["exploded"],
                       "cell": cell, "reference": ref, "direction": "either",
                       "margin": margin_rate} for cell, ref in contexts],
        })
        claims.append({
            "id": claim_id(f.factor, "final_per"),
            "text": f"{f.key} {f.before!r} -> {f.after!r} alone changes the final val PER "
                    f"by at least {margin_per:g}",
            "test": "any_of",
            "parts": [{"test": "per_difference", "cell": cell, "reference": ref,
                       "direction": "either", "margin": margin_per}
                      for cell, ref in contexts],
        })
    return {"defaults": {"alpha": 0.05}, "claims": claims}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # every cell written out, no &anchors
        return True


def claims_yaml(tree: dict, header: str = "") -> str:
    """The claims file's text: cells and lists on one line each, no YAML anchors."""
    return header + yaml.dump(tree, Dumper=_Dumper, sort_keys=False, width=100,
                              default_flow_style=None)


def config_path(name: str) -> Path:
    """A config named relative to configs/ (as presets name them), else a path."""
    path = Path(name)
    if path.is_file():
        return path
    if not path.is_absolute() and (CONFIG_DIR / name).is_file():
        return CONFIG_DIR / name
    raise ConfigError(f"{name}: config file not found (looked from the current folder and "
                      "in configs/); give the path of a training config")


def load_pair(from_config: str, to_config: str, keys: list[str] | None = None
              ) -> list[Difference]:
    """The differences of two config files (either format; a file that cannot be read is
    named by load_config)."""
    return differences(load_config(config_path(from_config)),
                       load_config(config_path(to_config)), keys)


def diff_blocks(from_config: str, to_config: str, keys: list[str] | None = None
                ) -> list[dict]:
    """A preset's blocks for the diff design: one block per design point, every factor an
    axis with the two values as levels."""
    factors = factors_of(load_pair(from_config, to_config, keys))
    return [{f.factor: {"key": f.key, "values": [level], "levels": [f.before, f.after]}
             for f, level in zip(factors, point, strict=True)}
            for point in design(len(factors))]


def check_registered(from_config: str, to_config: str, keys: list[str] | None,
                     margin_rate: float, margin_per: float, claims_path: Path) -> None:
    """A committed claims file must be exactly the claims of this pair of configs, so a
    change to either config after registration cannot leave claims about other cells."""
    expected = claims_tree(factors_of(load_pair(from_config, to_config, keys)),
                           margin_rate, margin_per)
    registered = yaml.safe_load(Path(claims_path).read_text())
    if registered != expected:
        raise ConfigError(f"{claims_path}: the registered claims are not those of "
                          f"{from_config} -> {to_config} (margins {margin_rate:g}, "
                          f"{margin_per:g}); register the pair's claims anew (study/diff.py "
                          "claims_tree) or restore the configs")

