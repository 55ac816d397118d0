"""Generator 2 (the calibrated synthetic data): the real recordings' statistics, the
articulatory code, per-block z-scoring, real session dates, sentence files, determinism,
and generator 1 left as it was."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import trainable.synthetic as synthetic
from trainable import synthetic_v2
from trainable.articulatory import FEATURES, articulatory_targets
from trainable.config import CONFIG_DIR, read_yaml
from trainable.errors import ConfigError
from trainable.synthetic import SyntheticSpec, generate, session_names
from trainable.vocab import PHONEME_TO_ID, PHONEMES, sentence_to_ids

ROOT = Path(__file__).resolve().parent.parent
CALIBRATED = CONFIG_DIR / "data" / "calibrated.yaml"
CALIBRATED_OFFICIAL = CONFIG_DIR / "data" / "calibrated_official.yaml"
# Small enough to write in a second: few electrodes, sessions and trials.
TINY_V2 = {"n_sessions": 2, "train_trials": 6, "val_trials": 3, "test_trials": 3,
           "trials_per_block": 3, "n_features": 32}


def calibrated(**overrides) -> SyntheticSpec:
    return SyntheticSpec.load(CALIBRATED, overrides)


def tiny_v2(**overrides) -> SyntheticSpec:
    return calibrated(**{**TINY_V2, **overrides})


def read_split(path: Path) -> list[dict]:
    with h5py.File(path, "r") as f:
        return [{**{k: f[name][k][()] for k in f[name]}, **dict(f[name].attrs)}
                for name in sorted(f)]


@pytest.fixture(scope="module")
def plans() -> list:
    """Training-trial plans of 1,200 calibrated trials (no features: fast)."""
    spec = calibrated(n_sessions=8, train_trials=150, val_trials=0, test_trials=0)
    return [p for p in synthetic_v2.trial_plans(spec) if p.slot.split == "train"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tiny_v2(), tmp_path_factory.mktemp("v2") / "data", progress=False)


# --------------------------------------------------------------------------- statistics


def test_sentences_have_the_real_number_of_words_and_labels(plans):
    words = np.array([len(p.sentence.split()) for p in plans])
    labels = np.array([len(p.ids) for p in plans])
    # Real (real_data_targets.md, S2, S6): 6.6 +- 2.1 words, 5th-95th percentile 4-10;
    # 28.8 labels.
    assert abs(words.mean() - 6.6) <= 0.5
    assert 1.6 <= words.std() <= 2.6
    assert list(np.percentile(words, [5, 95])) == [4, 10]
    assert abs(labels.mean() - 28.8) <= 3


def test_trials_have_the_real_length_and_label_density(plans):
    frames = np.array([p.n_frames for p in plans])
    labels = np.array([len(p.ids) for p in plans])
    # Real: mean 875 bins (S6), 30-32 bins per label (S6, S7).
    assert abs(frames.mean() - 875) <= 90
    assert abs(frames.sum() / labels.sum() - 30) <= 3
    # A fixed overhead of rest: short sentences have more bins per label than long ones.
    short, long = labels < np.percentile(labels, 25), labels > np.percentile(labels, 75)
    assert (frames[short] / labels[short]).mean() > 1.1 * (frames[long] / labels[long]).mean()


def test_a_real_sized_split_has_the_long_tail():
    spec = SyntheticSpec.load(CALIBRATED_OFFICIAL)
    frames = [p.n_frames for p in synthetic_v2.trial_plans(spec) if p.slot.split == "train"]
    assert len(frames) == 45 * 179
    assert max(frames) >= 2000  # real max 2,475 (S6)


def test_trial_plans_are_the_trials_written(tiny_root):
    spec = tiny_v2()
    plans = list(synthetic_v2.trial_plans(spec))
    written = {(t["session"], t["trial_num"], t["block_num"]): t
               for s in session_names(spec) for split in ("train", "val")
               for t in read_split(tiny_root / s / f"data_{split}.hdf5")}
    for plan in plans:
        if plan.slot.split == "test":
            continue
        trial = written[(session_names(spec)[plan.day], plan.slot.trial_num,
                         plan.slot.block_num)]
        assert trial["sentence_label"] == plan.sentence
        assert trial["n_time_steps"] == plan.n_frames


# --------------------------------------------------------------------------- features


def test_every_block_is_zscored_on_its_own_and_clipped(tmp_path):
    # Large per-block offsets: z-scoring per session (or not at all) would leave them.
    spec = tiny_v2(baseline_block_std=1.0, n_sessions=1, train_trials=9, val_trials=0,
                   test_trials=0)
    root = generate(spec, tmp_path / "d", progress=False)
    trials = read_split(root / session_names(spec)[0] / "data_train.hdf5")
    for block in {t["block_num"] for t in trials}:
        x = np.concatenate([t["input_features"] for t in trials if t["block_num"] == block])
        assert x.max() <= 10.0
        unclipped = (x < 10.0).all(axis=0)
        np.testing.assert_allclose(x.mean(axis=0)[unclipped], 0.0, atol=1e-4)
        active = unclipped & (x.std(axis=0) > 0)
        np.testing.assert_allclose(x.std(axis=0)[active], 1.0, atol=1e-3)


def test_clipping_is_rare_and_tx_is_count_like(tiny_root):
    x = np.concatenate([t["input_features"] for s in session_names(tiny_v2())
                        for t in read_split(tiny_root / s / "data_train.hdf5")])
    assert np.mean(x >= 10.0) < 5e-4  # real: 0.004% (S8)
    half = x.shape[1] // 2
    assert max(len(np.unique(x[:, c])) for c in range(half)) <= 40  # few counts per block
    assert min(len(np.unique(x[:, c])) for c in range(half, 2 * half)) > len(x) // 2


def test_arrays_differ_in_informativeness(tmp_path):
    # The neural signal is slow (phonemes last ~25 bins), the noise white, so a feature's
    # autocorrelation at a lag of a few bins is about its signal's share of the variance:
    # it grows with its array's drive, v6v and 55b (factor 1) above area 4 (0.5) above
    # d6v (0.3); the noise is the same for all.
    spec = tiny_v2(n_features=64, n_sessions=1, train_trials=12, val_trials=0,
                   test_trials=0)
    root = generate(spec, tmp_path / "d", progress=False)
    trials = read_split(root / session_names(spec)[0] / "data_train.hdf5")
    lag = 5
    now = np.concatenate([t["input_features"][lag:, 32:] for t in trials])
    before = np.concatenate([t["input_features"][:-lag, 32:] for t in trials])
    autocorr = np.array([np.corrcoef(now[:, e], before[:, e])[0, 1] for e in range(32)])
    v6v, area4, a55b, d6v = (autocorr[synthetic_v2.electrode_arrays(32) == a].mean()
                             for a in range(4))
    assert min(v6v, a55b) > 1.5 * area4 > 1.5 * d6v


def test_similar_phonemes_get_similar_targets():
    targets = articulatory_targets(32, 0.35, np.random.default_rng(0))

    def distance(a: str, b: str) -> float:
        return float(np.linalg.norm(targets[PHONEME_TO_ID[a]] - targets[PHONEME_TO_ID[b]]))

    assert distance("P", "B") < distance("P", "AA")  # voicing only vs nothing shared
    assert distance("T", "D") < distance("T", "IY")
    assert distance("S", "Z") < distance("S", "M")
    assert distance("IY", "IH") < distance("IY", "AA")
    # The generator's world uses this code.
    world = synthetic_v2._make_world(tiny_v2())
    t = world.phoneme_targets
    p, b, aa = (PHONEME_TO_ID[x] for x in ("P", "B", "AA"))
    assert np.linalg.norm(t[p] - t[b]) < np.linalg.norm(t[p] - t[aa])


def test_feature_table_covers_every_label():
    assert set(FEATURES) == set(PHONEMES[1:])


# --------------------------------------------------------------------------- sessions


def test_sessions_take_the_real_dates():
    official = read_yaml(CONFIG_DIR / "train" / "official.yaml")["data"]["sessions"]
    assert session_names(SyntheticSpec.load(CALIBRATED_OFFICIAL)) == official
    few = session_names(calibrated(n_sessions=8))
    assert few[0] == official[0] and few[-1] == official[-1] and len(set(few)) == 8
    gaps = np.diff(synthetic_v2.session_days(SyntheticSpec.load(CALIBRATED_OFFICIAL)))
    assert np.median(gaps) == 5 and gaps.max() == 166  # real (S1)


def test_tuning_drifts_more_over_more_days():
    spec = calibrated(n_sessions=45)
    days = synthetic_v2.session_days(spec)
    assert days[-1] == 611
    # Rotation angle after g days: drift * sqrt(g); the tuning correlation falls with g.
    drift = spec.tuning_drift_per_sqrt_day
    assert np.cos(drift * np.sqrt(5)) > 0.9 > np.cos(drift * np.sqrt(166))


# --------------------------------------------------------------------------- identity


def _dataset_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_spec_gives_the_same_bytes_and_another_seed_does_not(tmp_path, tiny_root):
    again = generate(tiny_v2(), tmp_path / "again", progress=False)
    assert _dataset_bytes(again) == _dataset_bytes(tiny_root)
    other = generate(tiny_v2(seed=1), tmp_path / "other", progress=False)
    first = session_names(tiny_v2())[0]
    assert (read_split(other / first / "data_train.hdf5")[0]["sentence_label"]
            != read_split(tiny_root / first / "data_train.hdf5")[0]["sentence_label"])


def test_metadata_records_the_generator(tiny_root):
    meta = yaml.safe_load((tiny_root / synthetic.SPEC_FILE).read_text())
    assert meta["generator_version"] == 2 and meta["spec"]["generator"] == 2
    assert meta["fingerprint"] == tiny_v2().fingerprint()
    assert SyntheticSpec.model_validate(meta["spec"]) == tiny_v2()


def test_generator_is_part_of_the_fingerprint():
    v1 = SyntheticSpec.load(overrides=TINY_V2)
    assert v1.generator == 1
    assert tiny_v2().fingerprint() != v1.fingerprint()
    assert tiny_v2().fingerprint() != tiny_v2(words_mean=7.0).fingerprint()


def test_generator_1_is_unchanged(tmp_path):
    # Arrays of a small generator-1 dataset as the round-1 code wrote them.
    spec = SyntheticSpec.load(overrides={"n_sessions": 3, "train_trials": 8, "val_trials": 4,
                                         "test_trials": 4, "trials_per_block": 4,
                                         "n_features": 16, "words_max": 3})
    root = generate(spec, tmp_path / "v1", progress=False)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.hdf5")):
        with h5py.File(path, "r") as f:
            for name in sorted(f):
                for key in sorted(f[name]):
                    h.update(np.ascontiguousarray(f[name][key][()]).tobytes())
    assert h.hexdigest()[:16] == "6867b850992168a3"
    assert spec.fingerprint() == "f04386a8b709"
    assert "generator" not in yaml.safe_load((root / synthetic.SPEC_FILE).read_text())["spec"]


@pytest.mark.parametrize("generator, knob, value", [
    (1, "words_mean", 7.0), (1, "sentences", "x.txt"), (2, "day_drift", 0.3),
    (2, "first_session_date", "2024.01.01")])
def test_a_knob_of_the_other_generator_is_rejected(tmp_path, generator, knob, value):
    if knob == "sentences":
        value = str(tmp_path / value)
        Path(value).write_text("hello world\n")
    spec_path = CALIBRATED if generator == 2 else None
    with pytest.raises(ConfigError, match=f"{knob} is read only by generator "
                                          f"{3 - generator}"):
        SyntheticSpec.load(spec_path, {knob: value})


def test_calibrated_specs_set_and_document_every_knob():
    for path in (CALIBRATED, CALIBRATED_OFFICIAL):
        text = path.read_text()
        assert set(yaml.safe_load(text)) == set(SyntheticSpec.model_fields) - synthetic.V1_ONLY
        assert all("#" in line for line in text.splitlines() if line and line[0] != "#")
    official = SyntheticSpec.load(CALIBRATED_OFFICIAL)
    assert (official.n_sessions, official.n_features, official.train_only_sessions) == (
        45, 512, 4)
    assert 7500 <= official.train_trials * official.n_sessions <= 8500
    assert calibrated().n_features == 512


# --------------------------------------------------------------------------- sentence files


def test_a_sentence_file_gives_the_sentences(tmp_path):
    lines = ["The cat sat on the mat.", "", "I don't know what you mean!"]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    spec = tiny_v2(sentences=str(tmp_path / "s.txt"))
    before = spec.fingerprint()
    root = generate(spec, tmp_path / "d", progress=False)
    trials = read_split(root / session_names(spec)[0] / "data_train.hdf5")
    assert {t["sentence_label"] for t in trials} <= {lines[0], lines[2]}
    for t in trials:
        assert list(t["seq_class_ids"][:t["seq_len"]]) == sentence_to_ids(t["sentence_label"])
    # The fingerprint follows the file's contents, not its path.
    (tmp_path / "copy.txt").write_text("\n".join(lines) + "\n")
    assert tiny_v2(sentences=str(tmp_path / "copy.txt")).fingerprint() == before
    (tmp_path / "s.txt").write_text("A different sentence.\n")
    assert tiny_v2(sentences=str(tmp_path / "s.txt")).fingerprint() != before


def test_a_sentence_file_path_in_a_spec_is_relative_to_the_spec(tmp_path):
    (tmp_path / "s.txt").write_text("hello world\n")
    tree = yaml.safe_load(CALIBRATED.read_text())
    tree["sentences"] = "s.txt"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tree))
    assert SyntheticSpec.load(tmp_path / "spec.yaml").sentences == str(tmp_path / "s.txt")


def test_an_unknown_word_is_named_with_its_line(tmp_path):
    (tmp_path / "s.txt").write_text("hello world\n\nthe blorfquux sat\n")
    with pytest.raises(ConfigError, match=r"s\.txt line 3: word 'blorfquux' is not in "
                                          "CMUdict"):
        tiny_v2(sentences=str(tmp_path / "s.txt"))
    proc = subprocess.run(
        [sys.executable, "-m", "trainable.synthetic", "--spec", str(CALIBRATED),
         "--out", str(tmp_path / "d"), "--set", f"sentences={tmp_path / 's.txt'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "line 3: word 'blorfquux'" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_a_missing_sentence_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="sentence file not found"):
        tiny_v2(sentences=str(tmp_path / "nope.txt"))


def test_round_trip_through_the_training_loader(tiny_root):
    from trainable.config import load_config
    from trainable.data import load_dataset

    cfg = load_config(overrides={"data.n_features": 32, "data.days_per_batch": 2})
    ds = load_dataset(tiny_root, cfg, splits=("train", "val", "test"))
    assert ds.report.kept == {"train": 12, "val": 6, "test": 6}
    assert ds.report.total_dropped() == 0


def test_the_trainer_cli_takes_a_synthetic_spec(tmp_path, capsys):
    from trainable.__main__ import main

    assert main(["--synthetic-spec", str(tmp_path / "none.yaml")]) == 2
    assert f"{tmp_path / 'none.yaml'}: config file not found" in capsys.readouterr().err
