"""`python -m study.run diff`: the diff preset made ready for the request (the pair of
configs, keys and margins it names), with the claims registered before the first run."""

from __future__ import annotations

import datetime as dt
import sys

from analysis.storage import resolve_storage
from study.diff import (FRACTIONAL_MAX, FULL_FACTORIAL_MAX, check_registered, claims_tree,
                        claims_yaml, config_path, factors_of, load_pair)
from study.presets import Preset, with_diff
from study.request import StudyRequest
from trainable.config import CONFIG_DIR
from trainable.errors import ConfigError


def prepare(request: StudyRequest, preset: Preset) -> tuple[Preset, StudyRequest]:
    """(preset, request) for `python -m study.run diff`: the preset's pair of configs, or
    --from / --to / --keys / margins in their place. The registered claims are the
    preset's file when the pair is the preset's (checked to be exactly that pair's), else
    generated for the new pair and written beside the study folder before any run. Prints
    every differing key, then the design."""
    spec = preset.diff
    if spec is None:
        raise ConfigError(f"preset {preset.name!r} has no diff section; run 'python -m "
                          "study.run diff' (preset diff) or give a preset with one")
    if request.train_config:
        raise ConfigError("--train-config: a diff study trains the --from and --to configs; "
                          "drop --train-config")
    chosen = (request.diff_from or spec.from_config, request.diff_to or spec.to_config,
              list(request.keys) if request.keys else spec.keys,
              request.margin_rate or spec.margin_rate, request.margin_per or spec.margin_per)
    shipped = (spec.from_config, spec.to_config, spec.keys, spec.margin_rate, spec.margin_per)
    diffs = load_pair(*chosen[:3])
    name = request.name or f"{preset.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if chosen == shipped and preset.claims is not None:
        check_registered(*chosen, CONFIG_DIR / preset.claims)
    else:
        storage = resolve_storage(request.storage, request.ray.storage_endpoint)
        claims = storage.local_root / f"{name}-claims.yaml"
        claims.parent.mkdir(parents=True, exist_ok=True)
        claims.write_text(claims_yaml(
            claims_tree(factors_of(diffs), chosen[3], chosen[4]),
            f"# Registered by python -m study.run diff before the first run of {name}:\n"
            f"# {chosen[0]} -> {chosen[1]}\n"))
        preset = with_diff(preset, *chosen, claims=str(claims.resolve()))
    print(f"{chosen[0]} -> {chosen[1]}: {len(diffs)} key(s) differ", file=sys.stderr)
    for d in diffs:
        print(f"  {d.line()}", file=sys.stderr)
    k = len(factors_of(diffs))
    print(f"design: {len(preset.blocks)} cells over {k} factor(s) (endpoints, each "
          f"difference applied alone and removed alone"
          + (", full factorial" if k <= FULL_FACTORIAL_MAX else
             ", 16-run fractional factorial" if k <= FRACTIONAL_MAX else "") + ")",
          file=sys.stderr)
    return preset, request.model_copy(update={
        "name": name, "train_config": str(config_path(chosen[0]))})
