"""End to end: a fake experiment folder in, every report file out; the CLI's errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.experiments import BASE, Planted, null_model, write_fake_experiment

from analysis import report
from analysis.scope import parameter_count, study_scope

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("trials.csv", "trials.parquet", "curves.csv", "curves.parquet", "cells.csv",
          "tests.csv", "fanova.csv", "regime.csv", "claims.csv", "claims_over_training.csv")
PRIMARY = {"text": "eps x augmentation on collapse", "test": "interaction",
           "outcomes": ["blank_collapse"], "base": BASE,
           "change": {"white_noise_std": 0.25, "constant_offset_std": 0.05},
           "moderator": {"eps": 1e-8}, "direction": "increase", "margin": 0.25}


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory):
    path = write_fake_experiment(tmp_path_factory.mktemp("e2e"), n_seeds=3, primary=PRIMARY)
    assert report.main([str(path)]) == 0
    return path, path / "report"


def test_every_output_is_written(grid_report):
    _, out = grid_report
    for name in (*TABLES, "report.html", "summary.txt"):
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    pairs = [p for p in pngs if p.startswith("pair_")]
    assert len(pairs) == 6  # every pair of the 4 varied axes
    assert {"stable_map.png", "lr_sensitivity.png", "training_curves.png",
            "eps_regime.png", "claims.png"} <= set(pngs)


def test_no_figures_gives_the_same_numbers_without_drawing(grid_report, tmp_path, capsys):
    path, out = grid_report
    capsys.readouterr()
    assert report.main([str(path), "--out", str(tmp_path / "text"), "--no-figures"]) == 0
    text = tmp_path / "text"
    assert not (text / "figures").exists()
    summary = (text / "summary.txt").read_text()
    assert capsys.readouterr().out == summary
    # the same text but the last line, which names the report's own path
    assert summary.splitlines()[:-1] == (out / "summary.txt").read_text().splitlines()[:-1]
    assert summary.splitlines()[-1] == f"Report: {text / 'report.html'}"
    for name in ("claims.csv", "cells.csv", "tests.csv"):
        assert (text / name).read_text() == (out / name).read_text(), name
    assert "data:image/png" not in (text / "report.html").read_text()


def test_tables_have_one_row_per_trial_and_report(grid_report):
    path, out = grid_report
    trials = pd.read_parquet(out / "trials.parquet")
    n_trials = sum(1 for d in path.iterdir() if (d / "params.json").is_file())
    assert len(trials) == n_trials == pd.read_csv(out / "trials.csv").shape[0]
    for column in ("trial_id", "folder", "eps", "lr_max", "white_noise_std",
                   "constant_offset_std", "seed", "steps_reached", "budget_steps",
                   "final_val_per", "best_val_per", "outcome", "status"):
        assert column in trials
    curves = pd.read_parquet(out / "curves.parquet")
    assert curves.groupby("trial_id")["step"].apply(lambda s: s.is_unique).all()
    assert len(curves) == trials["n_reports"].sum()


def test_html_is_self_contained_with_every_figure(grid_report):
    _, out = grid_report
    page = (out / "report.html").read_text()
    n_png = len(list((out / "figures").glob("*.png")))
    assert page.count('src="data:image/png;base64,') == n_png
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(s.startswith("data:") for s in sources)
    for text in ("confirmatory", "sha256:fake0123", "Denominators", "Holm",
                 "Pre-registered primary hypothesis", "Verdicts", "Caveats",
                 "Firth", "errored", "anytime-valid"):
        assert text in page, text
    # The answer comes first: verdicts before the maps, plumbing tables at the end.
    assert page.index("<h2>Verdicts") < page.index("<h2>Stable-region map") \
        < page.index("<h2>What was run") < page.index("<h2>Denominators")


def test_summary_names_kind_counts_and_verdicts(grid_report):
    _, out = grid_report
    summary = (out / "summary.txt").read_text()
    lines = summary.splitlines()
    assert "confirmatory" in lines[0] and lines[2].startswith("Verdicts")
    assert lines[1].startswith("These verdicts are about a proxy, not the official system: "
                               "data: built-in synthetic v1 (fingerprint ")
    assert "stopped early 1, errored 1" in summary
    assert "weak_augmentation_collapses: " in summary and "primary: " in summary
    assert str(out / "report.html") in summary


OFFICIAL = dict(BASE)
CELLS = [OFFICIAL, {**BASE, "white_noise_std": 0.25, "constant_offset_std": 0.05},
         {**BASE, "eps": 1e-8}]


@pytest.mark.parametrize(("seeds", "refuted", "stable"), [
    (47, "REFUTED", "SUPPORTED"), (17, "REFUTED", "INCONCLUSIVE"),
    (16, "INCONCLUSIVE", "INCONCLUSIVE")])
def test_report_states_known_verdicts(tmp_path, seeds, refuted, stable):
    samples = [{**cell, "seed": s} for s in range(seeds) for cell in CELLS]
    spec = {a: {"key": k, "values": sorted({c[a] for c in CELLS})} for a, k in
            (("eps", "optim.eps"), ("lr_max", "optim.lr_max"),
             ("white_noise_std", "augment.white_noise_std"),
             ("constant_offset_std", "augment.constant_offset_std"))}
    path = write_fake_experiment(tmp_path, samples=samples, axes_spec=spec, model=null_model,
                                 n_errored=0, n_stopped_early=0)
    out = report.build_report(path, draw=False)
    verdicts = pd.read_csv(out / "claims.csv").set_index("id")
    assert verdicts.loc["weak_augmentation_collapses", "verdict"] == refuted.lower()
    assert verdicts.loc["tiny_eps_explodes", "verdict"] == refuted.lower()
    assert verdicts.loc["official_setting_stable", "verdict"] == stable.lower()
    assert (verdicts.loc[["weak_augmentation_collapses", "tiny_eps_explodes",
                          "official_setting_stable"], "n"] == seeds).all()
    low_lr = verdicts.loc["low_lr_slow_or_collapse"]
    assert low_lr["verdict"] == "inconclusive" and "not in this study's design" in \
        low_lr["reason"]
    summary = (out / "summary.txt").read_text()
    assert f"weak_augmentation_collapses: {refuted} +0.00 [" in summary
    assert f"official_setting_stable: {stable} 0.00 [0.00, " in summary
    assert "POST HOC" not in summary


def test_claims_other_than_the_registered_ones_are_post_hoc(tmp_path):
    path = write_fake_experiment(tmp_path, n_seeds=1, n_errored=0, n_stopped_early=0)
    edited = tmp_path / "edited.yaml"
    edited.write_text(report.claims_mod.DEFAULT_CLAIMS.read_text().replace(
        "margin: 0.25", "margin: 0.5", 1))
    out = report.build_report(path, tmp_path / "posthoc", claims_path=edited, draw=False)
    summary = (out / "summary.txt").read_text()
    assert summary.splitlines()[2].startswith("POST HOC: the rules in")
    assert "POST HOC." in (out / "report.html").read_text()
    same = report.build_report(path, tmp_path / "same",
                               claims_path=report.claims_mod.DEFAULT_CLAIMS, draw=False)
    assert "POST HOC" not in (same / "summary.txt").read_text()


def test_exploratory_random_search_report(tmp_path):
    rng = np.random.default_rng(3)
    samples = [{"eps": float(10 ** rng.uniform(-8, 0)),
                "lr_max": float(10 ** rng.uniform(-3.5, -1.5)),
                "white_noise_std": float(rng.choice([0.25, 1.0])),
                "constant_offset_std": 0.2, "seed": 0} for _ in range(24)]
    spec = {"eps": {"key": "optim.eps", "distribution": "loguniform", "low": 1e-8,
                    "high": 1.0},
            "lr_max": {"key": "optim.lr_max", "distribution": "loguniform", "low": 3e-4,
                       "high": 3e-2},
            "white_noise_std": {"key": "augment.white_noise_std", "values": [0.25, 1.0]},
            "constant_offset_std": {"key": "augment.constant_offset_std", "values": [0.2]}}
    path = write_fake_experiment(tmp_path, samples=samples, axes_spec=spec,
                                 kind="exploratory", scheduler_stop=0.3, name="asha",
                                 claims=None)
    out = report.build_report(path, tmp_path / "elsewhere")
    assert out == tmp_path / "elsewhere" and not (path / "report").exists()
    trials = pd.read_csv(out / "trials.csv")
    # best configurations: lowest last PER first, errored runs and sentinels excluded
    best = pd.read_csv(out / "best.csv")
    ok = trials[(trials["status"] != "errored") & (trials["last_per"] < 1e3)]
    assert list(best["rank"]) == list(range(1, 11))
    assert best["last_per"].is_monotonic_increasing
    assert best["last_per"].iloc[0] == ok["last_per"].min()
    assert {"eps", "lr_max", "white_noise_std", "steps_reached"} <= set(best.columns)
    assert "constant_offset_std" not in best  # does not vary
    # ASHA rungs of the preset's defaults (grace 0.25, factor 2, budget 1000)
    rungs = pd.read_csv(out / "rungs.csv")
    assert list(rungs["rung_step"]) == [250, 500, 1000]
    runs = trials[trials["status"] != "errored"]
    assert list(rungs["runs_reaching"]) == [int((runs["steps_reached"] >= r).sum())
                                            for r in (250, 500, 1000)]
    assert rungs["runs_reaching"].iloc[0] > rungs["runs_reaching"].iloc[-1]
    # surrogate importance of each varying axis, with its fit quality
    imp = pd.read_csv(out / "importance.csv")
    assert set(imp["axis"]) == {"eps", "lr_max", "white_noise_std"}
    assert imp["share"].between(0, 1).all() and imp["oob_r2"].notna().all()
    assert {p.stem for p in (out / "figures").glob("*.png")} == {
        "slices", "parallel", "importance", "rungs", "learning_curves"}
    page = (out / "report.html").read_text()
    assert "Best configurations found" in page and "exploratory" in page
    assert "without a full-budget run" not in page and "Primary" not in page
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("Exploratory search asha:") and "  #1: eps=" in summary
    assert "cells" not in summary.lower()


def test_rung_milestones_follow_ashas_geometric_ladder():
    from analysis.exploratory import rung_milestones

    assert rung_milestones(400, 0.25, 2) == [100, 200, 400]
    assert rung_milestones(40, 0.25, 2) == [10, 20, 40]
    assert rung_milestones(1000, 0.1, 3) == [100, 300, 900, 1000]


def test_cli_rejects_a_folder_that_is_not_an_experiment(tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "study.yaml" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_reports_a_bad_claims_file(tmp_path, capsys):
    path = write_fake_experiment(tmp_path, n_seeds=1, n_errored=0, n_stopped_early=0)
    assert report.main([str(path), "--claims", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.yaml" in err and err.count("\n") == 1


def test_multi_block_design_is_analysed_block_by_block(tmp_path):
    blocks = [{"eps": [1e-8, 1e-4, 1e-2, 0.1, 1.0], "lr_max": [0.002, 0.005, 0.01]},
              {"white_noise_std": [0.25, 0.5, 1.0], "constant_offset_std": [0.05, 0.2]}]
    path = write_fake_experiment(tmp_path, blocks=blocks, n_seeds=2, name="map")
    out = report.build_report(path)
    pngs = sorted(p.name for p in (out / "figures").glob("*pair_*.png"))
    assert pngs == ["block1_pair_eps__lr_max.png",
                    "block2_pair_white_noise_std__constant_offset_std.png"]
    tests = pd.read_csv(out / "tests.csv")
    assert len(tests) == 2 * 4 and set(tests["block"]) == {
        "eps x lr_max", "white_noise_std x constant_offset_std"}
    cells = pd.read_csv(out / "cells.csv")
    # The errored and the stopped-early run sit at the base point, shared by both blocks.
    assert cells.groupby("block")["n_total"].sum().to_dict() == {
        "eps x lr_max": 15 * 2 + 2, "white_noise_std x constant_offset_std": 6 * 2 + 2}
    # Without a boundary in the study (the map preset's) the regime test says why it did
    # not run (tests/test_boundary.py reads a map's).
    regime = pd.read_csv(out / "regime.csv")
    assert regime["note"].str.startswith("not run: the preset defines no boundary").all()
    assert not (out / "boundary.csv").exists()
    # Claims read their cells wherever the design has them: eps 1e-8 at the base point.
    verdicts = pd.read_csv(out / "claims.csv").set_index("id")
    assert verdicts.loc["tiny_eps_explodes", "n"] == 2
    assert "blocks" in (out / "report.html").read_text()


def test_report_states_what_the_day_layers_lr_did():
    from types import SimpleNamespace

    from analysis.html import day_lr_text
    from trainable.config import Config

    axes = {"lr_max": SimpleNamespace(key="optim.lr_max")}
    config = Config.model_validate({"optim": {"lr_max": 0.02, "lr_max_day": 0.005}})
    fixed = SimpleNamespace(day_lr="fixed", train_config=config, axes=axes)
    assert day_lr_text(fixed).startswith("fixed at 0.005 whatever lr_max")
    # no lr_max_day of its own: the day layers keep the config's lr_max
    unset = Config.model_validate({"optim": {"lr_max": 0.02}})
    assert day_lr_text(SimpleNamespace(day_lr="fixed", train_config=unset, axes=axes)
                       ).startswith("fixed at 0.02 whatever lr_max")
    assert day_lr_text(SimpleNamespace(day_lr="follow", train_config=config, axes=axes)) == \
        "follows each trial's lr_max"
    old = SimpleNamespace(day_lr=None, train_config=config, axes=axes)
    assert "before the choice existed" in day_lr_text(old)
    assert day_lr_text(SimpleNamespace(day_lr=None, train_config=config, axes={})) == \
        "lr_max is not an axis"


def _collapse_corner(cell, rng):
    """Only eps 1e-8 with lr_max 0.002 collapses, every seed."""
    if cell["eps"] < 1e-4 and cell["lr_max"] < 0.003:
        return Planted("blank_collapse", 1.0)
    return null_model(cell, rng)


def _per_corner(cell, rng):
    """Every run stable; eps 1e-8 with lr_max 0.002 ends 0.15 PER worse: an eps x lr_max
    interaction on PER."""
    corner = cell["eps"] < 1e-4 and cell["lr_max"] < 0.003
    return Planted("stable", float(rng.normal(0.20 + 0.15 * corner, 0.01)))


@pytest.mark.parametrize(("model", "cells_line", "significant"), [
    # separated cells: raw p 0.029 on collapse and on failure, Holm-adjusted 0.058: none
    (_collapse_corner, "Cells: 3 stable, 1 unstable, 0 uncertain", set()),
    (_per_corner, "Cells: 4 stable, 0 unstable, 0 uncertain", {("eps x lr_max", "per")}),
    (null_model, "Cells: 4 stable, 0 unstable, 0 uncertain", set()),
])
def test_summary_counts_cells_and_names_the_holm_significant_tests(tmp_path, model,
                                                                   cells_line, significant):
    grid = {"eps": [1e-8, 0.1], "lr_max": [0.002, 0.005], "white_noise_std": [1.0],
            "constant_offset_std": [0.2]}
    path = write_fake_experiment(tmp_path, model=model, grid=grid, n_seeds=16,
                                 n_errored=0, n_stopped_early=0)
    summary = (report.build_report(path, draw=False) / "summary.txt").read_text()
    assert cells_line in summary
    tests = pd.read_csv(path / "report" / "tests.csv")
    hits = tests[tests["p_holm"] < 0.05]
    if model is _collapse_corner:
        assert (tests["p_value"] < 0.05).sum() == 2 and hits.empty
    assert set(zip(hits["pair"], hits["endpoint"])) == significant
    line = next(x for x in summary.splitlines() if "significant after Holm" in x)
    if significant:
        assert line.startswith("Secondary interaction tests significant after Holm: "
                               "eps x lr_max on per (p_holm=")
    else:
        assert line.endswith("after Holm: none")


def test_a_study_read_elsewhere_finds_its_registered_claims_by_hash(tmp_path):
    import yaml

    path = write_fake_experiment(tmp_path, model=null_model, n_seeds=2)
    study = yaml.safe_load((path / "study.yaml").read_text())
    study["claims"]["path"] = "/another/checkout/configs/claims.yaml"  # gone here
    (path / "study.yaml").write_text(yaml.safe_dump(study))
    summary = (report.build_report(path, draw=False) / "summary.txt").read_text()
    assert "POST HOC" not in summary and "weak_augmentation_collapses: " in summary
    study["claims"]["sha256"] = "0" * 64  # another file of that name: not taken
    (path / "study.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(Exception, match="claims file not found"):
        report.build_report(path)


def test_every_verdict_names_its_world_and_the_report_opens_with_it(grid_report):
    """Data (kind and fingerprint), model (size, parameters, layer-0 fan-in) and budget
    (steps, schedule against the official 120k) on the first line of the report and on
    every verdict line of the summary, the HTML table and claims.csv."""
    path, out = grid_report
    record = report.load_experiment(path).study
    scope = study_scope(record)
    assert scope.model.startswith(f"{record.train_config.model.n_layers}x")
    assert "parameters, layer-0 fan-in" in scope.model and "(official 5x768, 44.3 M, 7,168)" \
        in scope.model
    assert f"{record.budget_steps:,} steps" in scope.budget and "120,000" in scope.budget
    summary = (out / "summary.txt").read_text().splitlines()
    assert scope.data in summary[1] and scope.model in summary[1] and scope.budget in summary[1]
    assert "No confirmation on calibrated or real data exists" in summary[1]
    verdict_lines = [line for line in summary if line.startswith("  ") and ": " in line
                     and any(w in line for w in ("SUPPORTED", "REFUTED", "INCONCLUSIVE",
                                                 "SMALLER THAN CLAIMED"))]
    assert len(verdict_lines) == 7  # six claims and the primary
    assert all(line.endswith(f"[{scope.tag}]") for line in verdict_lines)
    table = pd.read_csv(out / "claims.csv")
    assert (table["data"] == scope.data).all() and (table["model"] == scope.model).all()
    assert (table["budget"] == scope.budget).all()
    page = (out / "report.html").read_text()
    first = page.index("<h1>")
    assert page.index("These verdicts are about a proxy") - first < 200
    assert page.count(scope.tag) >= 7


def test_parameter_count_of_the_official_model():
    # 44,315,177: the official model's size (shared/design/official_baseline.md)
    assert parameter_count(512, 45, 14, 768, 5, 41) == 44_315_177
    # the proxy: 2x128 GRU on 64 features, 8 sessions
    assert parameter_count(64, 8, 14, 128, 2, 41) == 8 * (64 * 64 + 64) + 3 * 128 * 896 \
        + 2 * 3 * 128 * 128 + 12 * 128 + 3 * 128 * 128 + 128 * 41 + 41 + 128


def test_the_opening_names_a_confirmation_on_other_data_and_how_it_agreed(tmp_path):
    import yaml

    proxy = write_fake_experiment(tmp_path, n_seeds=3, name="proxy", n_errored=0,
                                  n_stopped_early=0)
    calibrated = write_fake_experiment(tmp_path, n_seeds=3, name="calibrated", n_errored=0,
                                       n_stopped_early=0, seed=1)
    record = yaml.safe_load((calibrated / "study.yaml").read_text())
    record["data"]["generator"] = "v2"
    (calibrated / "study.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    report.build_report(calibrated, draw=False)
    theirs = pd.read_csv(calibrated / "report" / "claims.csv")
    assert (theirs["data"].str.startswith("calibrated built-in synthetic v2")).all()
    summary = (report.build_report(proxy, draw=False) / "summary.txt").read_text()
    opening = summary.splitlines()[1]
    assert "Confirmation: study calibrated on calibrated built-in synthetic v2" in opening
    mine = pd.read_csv(proxy / "report" / "claims.csv")
    same = int((mine.set_index("id")["verdict"] == theirs.set_index("id")["verdict"]).sum())
    assert f"agrees on {same} of {len(mine)} claims" in opening
    own = (calibrated / "report" / "summary.txt").read_text().splitlines()[1]
    assert own.endswith("This study is itself on calibrated built-in synthetic v2.")
