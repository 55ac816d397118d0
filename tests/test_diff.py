"""The diff study's pure parts: which keys differ, the design, the registered claims."""

import itertools

import yaml

import numpy as np
import pytest

from study.diff import claims_tree, design, differences, factors_of, fractional_factorial
from trainable.config import CONFIG_DIR, load_config
from trainable.errors import ConfigError


def _pm(rows) -> np.ndarray:
    return np.array(rows) * 2 - 1  # 0/1 -> -1/+1


@pytest.mark.parametrize("k, resolution", [(5, 5), (6, 4), (7, 4), (8, 4)])
def test_fractional_factorials_have_their_resolution(k, resolution):
    x = _pm(fractional_factorial(k))
    assert x.shape == (16, k)
    assert (x.sum(0) == 0).all()  # balanced
    # No defining word shorter than the resolution: the product of any fewer columns is
    # never constant (main effects clear of two-factor interactions from resolution IV).
    for size in range(1, resolution):
        for cols in itertools.combinations(range(k), size):
            assert abs(x[:, cols].prod(1).sum()) < 16, cols
    words = [cols for cols in itertools.combinations(range(k), resolution)
             if abs(x[:, cols].prod(1).sum()) == 16]
    assert words  # the design is a fraction, not a full factorial


def test_design_holds_endpoints_and_each_difference_applied_and_removed():
    for k in (1, 2, 3, 6, 10):
        points = design(k)
        assert points[:2] == [(0,) * k, (1,) * k]
        assert len(set(points)) == len(points)
        for i in range(k):
            assert tuple(int(j == i) for j in range(k)) in points
            assert tuple(int(j != i) for j in range(k)) in points
    assert len(design(3)) == 8  # the full factorial holds the one-at-a-time points
    assert len(design(10)) == 2 + 2 * 10  # too many keys for a fraction: one at a time
    assert set(fractional_factorial(6)) <= set(design(6))


def test_differences_list_every_key_and_make_factors_of_training_keys():
    a = load_config()
    b = load_config(overrides={"loss.normalisation": "label", "optim.eps": 1e-8,
                               "train.num_steps": 10, "augment.smooth_data": False})
    diffs = differences(a, b)
    assert [d.key for d in diffs] == ["augment.smooth_data", "loss.normalisation",
                                      "optim.eps", "train.num_steps"]
    assert [d.factor for d in factors_of(diffs)] == ["smooth_data", "normalisation", "eps"]
    budget = next(d for d in diffs if d.key == "train.num_steps")
    assert "not a factor" in budget.line() and budget.factor == ""
    restricted = differences(a, b, keys=["optim.eps"])
    assert [d.factor for d in factors_of(restricted)] == ["eps"]


@pytest.mark.parametrize("after, keys, message", [
    ({}, None, "differ in no key that sets the training"),
    ({"train.num_steps": 10}, None, "differ in no key that sets the training"),
    ({"data.n_features": 128}, None, "cannot compare: data.n_features"),
    ({"optim.eps": 1e-8}, ["optim.epss"], "optim.epss is not a training config key"),
    ({"optim.eps": 1e-8}, ["optim.lr_max"], "optim.lr_max has the same value"),
])
def test_configs_that_cannot_be_compared_are_named(after, keys, message):
    with pytest.raises(ConfigError, match=message):
        differences(load_config(), load_config(overrides=after), keys=keys)


def test_claims_compare_each_factor_in_both_contexts():
    a = load_config(CONFIG_DIR / "train" / "official.yaml")
    b = load_config(CONFIG_DIR / "train" / "official.yaml",
                    overrides={"loss.normalisation": "label", "data.batch_size": 48})
    tree = claims_tree(factors_of(differences(a, b)), margin_rate=0.25, margin_per=0.02)
    ids = [c["id"] for c in tree["claims"]]
    assert ids == ["batch_size_changes_failure_rate", "batch_size_changes_final_per",
                   "normalisation_changes_failure_rate", "normalisation_changes_final_per"]
    parts = tree["claims"][2]["parts"]
    assert parts[0]["cell"] == {"batch_size": 0, "normalisation": 1}
    assert parts[0]["reference"] == {"batch_size": 0, "normalisation": 0}
    assert parts[1]["cell"] == {"batch_size": 1, "normalisation": 1}
    assert parts[1]["reference"] == {"batch_size": 1, "normalisation": 0}
    assert all(p["direction"] == "either" and p["margin"] == 0.25 for p in parts)


def test_factor_levels_keep_cells_numeric_and_give_trials_the_config_values():
    from study.presets import Preset, axis_levels, grid_points
    from trainable.tune_adapter import resolve_trial_config

    preset = Preset.model_validate({
        "name": "factors", "budgets": {"default": {"steps": 10, "eval_every": 5}},
        "blocks": [{"normalisation": {"key": "loss.normalisation", "values": [1],
                                      "levels": ["utterance", "label"]}},
                   {"explode_norm": {"key": "monitor.explode_norm", "values": [0, 1],
                                     "levels": [None, 20.0]}}],
    })
    cfg = load_config()
    assert grid_points(preset, cfg) == [{"normalisation": 1, "explode_norm": 0},
                                        {"normalisation": 0, "explode_norm": 0},
                                        {"normalisation": 0, "explode_norm": 1}]
    base = cfg.model_dump(mode="json")
    trial = resolve_trial_config({"normalisation": 1, "explode_norm": 1, "seed": 2}, base,
                                 preset.axis_keys(), axis_levels(preset))
    assert trial.loss.normalisation == "label" and trial.monitor.explode_norm == 20.0
    assert trial.train.seed == 2


@pytest.mark.parametrize("axis", [
    {"key": "loss.normalisation", "values": [2], "levels": ["utterance", "label"]},
    {"key": "loss.normalisation", "values": [0.5], "levels": ["utterance", "label"]},
    {"key": "loss.normalisation", "values": [0], "levels": ["utterance"]},
])
def test_factor_values_must_index_their_levels(axis):
    from pydantic import ValidationError

    from study.presets import AxisSpec

    with pytest.raises(ValidationError, match="indices"):
        AxisSpec.model_validate(axis)


def test_the_shipped_diff_preset_is_the_registered_practitioner_study(tmp_path):
    from study.diff import check_registered
    from study.presets import load_preset

    preset = load_preset("diff")
    spec = preset.diff
    assert len(preset.blocks) == 2 + 2 * 10  # ten differences: one at a time
    claims = CONFIG_DIR / preset.claims
    check_registered(spec.from_config, spec.to_config, spec.keys, spec.margin_rate,
                     spec.margin_per, claims)
    with pytest.raises(ConfigError, match="registered claims are not"):
        check_registered(spec.from_config, spec.to_config, spec.keys, spec.margin_rate,
                         0.02, claims)


@pytest.mark.parametrize("name", ["grid", "map", "controls", "diff", "ladder", "boundary",
                                  "width", "edges"])
def test_a_recorded_preset_validates_again_as_the_same_design(name):
    """A study record keeps the preset (resume and the report rebuild it from there)."""
    from study.presets import Preset, grid_points, load_preset, stored_preset

    preset = load_preset(name)
    again = Preset.model_validate(stored_preset(preset))
    cfg = load_config()
    assert again.blocks == preset.blocks
    if preset.search == "grid":
        assert grid_points(again, cfg) == grid_points(preset, cfg)


def _diff_preset(path, **fields):
    preset = {"name": "tinydiff", "search": "grid", "scheduler": "fifo",
              "diff": {"from": "train/proxy.yaml", "to": "train/practitioner_proxy.yaml"},
              "seeds": 2, "schedule": "real", "claims": None,
              "adaptive": {"max_trials": 48, "wave_trials": 8},
              "budgets": {"default": {"steps": 100, "eval_every": 10}}}
    preset.update(fields)
    path.write_text(yaml.safe_dump(preset))
    return path


def _configs(tmp_path, **changes):
    base = yaml.safe_load((CONFIG_DIR / "train" / "proxy.yaml").read_text())
    base["optim"]["lr_min"] = 1e-6  # below every lr_max of the tests
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        base.setdefault(section, {})[key] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(base))
    return good, bad


@pytest.mark.parametrize("flags, message", [
    (["--from", "nothere.yaml"], "nothere.yaml: config file not found"),
    (["--train-config", "train/proxy.yaml"], "--train-config: a diff study trains"),
    (["--to", "train/proxy.yaml"], "differ in no key that sets the training"),
    (["--keys", "optim.eps"], "optim.eps has the same value in both configs"),
    (["--preset", "grid"], "preset 'grid' has no diff section"),
])
def test_diff_command_refuses_what_it_cannot_compare_in_one_line(flags, message, tmp_path,
                                                                  capsys):
    from support.studies import run_cli

    rc = run_cli("diff", *flags, "--storage", tmp_path / "r")
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_diff_preset_is_refused_by_the_other_commands(tmp_path, capsys):
    from support.studies import run_cli

    rc = run_cli("grid", "--preset", "diff", "--storage", tmp_path)
    assert rc == 2 and "run it with 'python -m study.run diff" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow(seconds=120)
def test_a_diff_study_names_the_planted_key_and_refutes_the_inert_one(ray_session, tiny_data,
                                                                      tmp_path):
    """lr_max 100x too low (the planted cause) and an explosion alarm no run can reach (an
    inert difference: the same training, the same labels)."""
    import pandas as pd
    from support.studies import TINY_SET, run_cli

    good, bad = _configs(tmp_path, optim__lr_max=5e-5, monitor__explode_norm=1e9)
    rc = run_cli("diff", "--preset", _diff_preset(tmp_path / "p.yaml"), "--from", good,
                 "--to", bad, "--data", tiny_data, "--storage", tmp_path / "r", "--name", "d",
                 *TINY_SET)
    assert rc == 0
    report = tmp_path / "r" / "d" / "report"
    verdicts = pd.read_csv(report / "claims.csv").set_index("id")["verdict"]
    ranking = pd.read_csv(report / "ranking.csv")
    assert ranking["factor"].tolist() == ["lr_max", "explode_norm"]
    assert "supported" in (verdicts["lr_max_changes_failure_rate"],
                           verdicts["lr_max_changes_final_per"])
    assert verdicts["explode_norm_changes_final_per"] == "refuted"
    assert (tmp_path / "r" / "d-claims.yaml").is_file()  # registered before the runs


def test_two_official_rnn_args_files_are_compared_key_by_key(tmp_path):
    """The practitioner's situation in the official format: their rnn_args.yaml (lr_max
    0.002, a 2,000-step warm-up, batch 48, weak augmentation) against the official one."""
    from support.official import official_args, write

    from study.diff import load_pair

    official = write(tmp_path / "official.yaml", official_args())
    theirs = write(tmp_path / "theirs.yaml", official_args(
        lr_max=0.002, lr_warmup_steps=2000, dataset__batch_size=48,
        dataset__data_transforms__white_noise_std=0.25))
    diffs = load_pair(str(official), str(theirs))
    assert [(d.key, d.before, d.after) for d in factors_of(diffs)] == [
        ("data.batch_size", 64, 48), ("augment.white_noise_std", 1.0, 0.25),
        ("optim.lr_max", 0.005, 0.002), ("optim.lr_warmup_steps", 1000, 2000)]
    # The official file against the project's copy of it: the day-layer keys it repeats
    # train as the unset ones that follow the main schedule, so nothing differs.
    with pytest.raises(ConfigError, match="differ in no key that sets the training"):
        load_pair(str(official), "train/official.yaml")


def test_ranking_puts_shown_effects_first_then_the_largest_estimates():
    import pandas as pd

    from analysis.diffs import ranking

    def rows(factor, rate, per, low=-1.0, high=1.0):
        return [{"factor": factor, "key": f"k.{factor}", "from": "0", "to": "1",
                 "endpoint": endpoint, "context": context, "estimate": value,
                 "ci_low": low if endpoint == "failure_rate" else -9,
                 "ci_high": high if endpoint == "failure_rate" else 9, "n": 5,
                 "margin": 0.25 if endpoint == "failure_rate" else 0.05}
                for endpoint, value in (("failure_rate", rate), ("final_per", per))
                for context in ("applied", "removed")]

    effects = pd.DataFrame(rows("inert", 0.0, 0.0) + rows("big", 1.0, 0.7)
                           + rows("shown", 0.5, 0.0, low=0.3, high=0.7)
                           + rows("per_only", 0.0, 0.4))
    rank = ranking(effects, pd.DataFrame(columns=["id", "verdict"]))
    assert rank["factor"].tolist() == ["shown", "big", "per_only", "inert"]
    assert rank.loc[0, "failure_rate_shown"] == pytest.approx(0.3 / 0.25)
