"""The synthetic generator: official layout, determinism, brain-like structure, spec errors,
the CLI and the cache."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import trainable.synthetic as synthetic
from trainable.errors import ConfigError, UserError
from trainable.synthetic import SyntheticSpec, ensure_synthetic, generate, session_names
from trainable.vocab import PHONEMES, SIL_ID, sentence_to_ids, word_phonemes

ROOT = Path(__file__).resolve().parent.parent

TINY = {"n_sessions": 3, "train_trials": 8, "val_trials": 4, "test_trials": 4,
        "trials_per_block": 4, "n_features": 16, "words_min": 1, "words_max": 3}
# Everything that moves a channel's mean between days, blocks or trials switched off.
NO_NUISANCE = {"day_offset_std": 0.0, "block_offset_std": 0.0, "within_day_drift_std": 0.0}


def tiny(**overrides) -> SyntheticSpec:
    return SyntheticSpec.load(overrides={**TINY, **overrides})


def read_split(path: Path) -> list[dict]:
    """Every trial of a file, in trial_NNNN order, as {name: array or attr}."""
    with h5py.File(path, "r") as f:
        return [{**{k: f[f"trial_{i:04d}"][k][()] for k in f[f"trial_{i:04d}"]},
                 **dict(f[f"trial_{i:04d}"].attrs)} for i in range(len(f))]


def train_features(root: Path, session: str) -> list[np.ndarray]:
    return [t["input_features"] for t in read_split(root / session / "data_train.hdf5")]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tiny(), tmp_path_factory.mktemp("syn") / "data", progress=False)


def test_layout_follows_the_official_files(tiny_root):
    spec = tiny()
    sessions = session_names(spec)
    assert sorted(p.name for p in tiny_root.iterdir() if p.is_dir()) == sessions
    dates = [dt.datetime.strptime(s.removeprefix("t15."), "%Y.%m.%d") for s in sessions]
    gaps = [(b - a).days for a, b in itertools.pairwise(dates)]
    assert all(spec.session_gap_days_min <= g <= spec.session_gap_days_max for g in gaps)
    for session in sessions:
        for split, n in (("train", 8), ("val", 4), ("test", 4)):
            with h5py.File(tiny_root / session / f"data_{split}.hdf5", "r") as f:
                assert list(f) == [f"trial_{i:04d}" for i in range(n)]
                assert dict(f.attrs) == {}
            for trial in read_split(tiny_root / session / f"data_{split}.hdf5"):
                x = trial["input_features"]
                assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 16
                assert trial["n_time_steps"] == len(x)
                assert trial["session"] == session
                assert trial["block_num"] >= 1 and trial["trial_num"] >= 0
                labelled = {"seq_class_ids", "transcription", "seq_len", "sentence_label"}
                if split == "test":
                    assert not labelled & set(trial)
                    continue
                seq, text, n_ids = trial["seq_class_ids"], trial["transcription"], trial["seq_len"]
                assert seq.dtype == np.int32 and seq.shape == (500,)
                assert text.dtype == np.int32 and text.shape == (500,)
                assert np.all(seq[n_ids:] == 0) and np.all((seq[:n_ids] >= 1) & (seq[:n_ids] <= 40))
                sentence = trial["sentence_label"]
                assert sentence[0].isupper() and sentence.endswith(".")
                # Official _extract_transcription: characters up to the first zero.
                end = int(np.argwhere(text == 0)[0, 0])
                assert "".join(chr(c) for c in text[:end]) == sentence
                assert np.all(text[end:] == 0)
                assert list(seq[:n_ids]) == sentence_to_ids(sentence)
                assert seq[n_ids - 1] == SIL_ID
                assert int(np.sum(seq == SIL_ID)) == len(sentence.split())
    meta = yaml.safe_load((tiny_root / synthetic.SPEC_FILE).read_text())
    assert meta["fingerprint"] == spec.fingerprint() and meta["sessions"] == sessions
    assert SyntheticSpec.model_validate(meta["spec"]) == spec


def test_blocks_are_either_training_or_held_out(tiny_root):
    session = tiny_root / session_names(tiny())[0]
    blocks = {split: {t["block_num"] for t in read_split(session / f"data_{split}.hdf5")}
              for split in ("train", "val", "test")}
    assert not blocks["train"] & (blocks["val"] | blocks["test"])
    assert blocks["val"] & blocks["test"]  # held-out blocks mix val and test
    assert len(blocks["train"]) == 2  # 8 trials, 4 per block


def test_trials_have_enough_frames_for_ctc_unless_asked_not_to(tmp_path):
    def frames_and_labels(root):
        return [(t["n_time_steps"], t["seq_len"])
                for s in session_names(tiny()) for split in ("train", "val")
                for t in read_split(root / s / f"data_{split}.hdf5")]

    def patches(n_frames):  # official patching: size 14, stride 4
        return (n_frames - 14) // 4 + 1

    normal = generate(tiny(), tmp_path / "normal", progress=False)
    assert all(patches(t) > n for t, n in frames_and_labels(normal))
    # Still enough after the official random cut of up to 2 leading frames.
    assert all(patches(t - 2) >= n for t, n in frames_and_labels(normal))
    # Phonemes of one bin and no rest: every trial needs its tail lengthened, to exactly
    # one patch more than it has labels.
    fast = generate(tiny(bins_per_phoneme=1.0, sil_bins=1.0, lead_in_bins_min=0,
                         lead_in_bins_max=0, tail_bins_min=0, tail_bins_max=0),
                    tmp_path / "fast", progress=False)
    assert all(patches(t) == n + 1 for t, n in frames_and_labels(fast))
    short = generate(tiny(too_short_fraction=1.0), tmp_path / "short", progress=False)
    assert all(patches(t) < n for t, n in frames_and_labels(short))


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, tiny_root):
    again = generate(tiny(), tmp_path / "again", progress=False)
    for path in sorted(tiny_root.rglob("*.hdf5")):
        assert path.read_bytes() == (again / path.relative_to(tiny_root)).read_bytes()
    other = generate(tiny(seed=1), tmp_path / "other", progress=False)
    first = session_names(tiny())[0]
    a = train_features(tiny_root, first)[0]
    b = train_features(other, session_names(tiny(seed=1))[0])[0]
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_changing_test_count_keeps_the_training_trials(tmp_path, tiny_root):
    more = generate(tiny(test_trials=7), tmp_path / "more", progress=False)
    for session in session_names(tiny()):
        a = read_split(tiny_root / session / "data_train.hdf5")
        b = read_split(more / session / "data_train.hdf5")
        assert [t["sentence_label"] for t in a] == [t["sentence_label"] for t in b]
        assert [t["n_time_steps"] for t in a] == [t["n_time_steps"] for t in b]


def test_features_are_zscored_clipped_and_tx_is_count_like(tmp_path, tiny_root):
    clean = generate(tiny(**NO_NUISANCE), tmp_path / "clean", progress=False)
    x = np.concatenate(train_features(clean, session_names(tiny())[0]))
    # z-scored with the training split's statistics (before the clip at +10).
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=0.1)

    trials = train_features(tiny_root, session_names(tiny())[1])
    assert max(t.max() for t in trials) <= 10.0
    trial = max(trials, key=len)
    tx_values = [len(np.unique(trial[:, c])) for c in range(8)]
    sbp_values = [len(np.unique(trial[:, c])) for c in range(8, 16)]
    assert max(tx_values) <= 16  # small counts: few distinct values within a trial
    assert min(sbp_values) > len(trial) // 2  # continuous

    rare = generate(tiny(tx_mean_count=0.005), tmp_path / "rare", progress=False)
    # One crossing on a nearly silent channel is far above +10 SD: the clip must hold it.
    assert max(t.max() for t in train_features(rare, session_names(tiny())[0])) == 10.0


def _session_means(root: Path, spec: SyntheticSpec) -> np.ndarray:
    return np.stack([np.concatenate(train_features(root, s)).mean(axis=0)
                     for s in session_names(spec)])


def test_days_differ_in_offsets_and_in_tuning(tmp_path):
    spec = tiny(**{**NO_NUISANCE, "day_offset_std": 0.5})
    means = _session_means(generate(spec, tmp_path / "offsets", progress=False), spec)
    assert np.std(means[0] - means[1]) > 0.4  # about 0.5 * sqrt(2)
    base = tiny(**NO_NUISANCE)
    assert np.std(_session_means(generate(base, tmp_path / "none", progress=False), base)) < 0.05

    def tuning_change(day_drift: float) -> float:
        spec = tiny(**NO_NUISANCE, day_gain_std=0.0, day_drift=day_drift, n_sessions=2,
                    train_trials=40)
        root = generate(spec, tmp_path / f"drift{day_drift}", progress=False)
        corr = [np.corrcoef(np.concatenate(train_features(root, s)), rowvar=False)
                for s in session_names(spec)]
        return float(np.abs(corr[0] - corr[1]).mean())

    assert tuning_change(0.8) > 2 * tuning_change(0.0)


def test_blocks_carry_their_own_offsets(tmp_path):
    def block_spread(block_offset_std: float) -> float:
        spec = tiny(**{**NO_NUISANCE, "block_offset_std": block_offset_std},
                    n_sessions=1, train_trials=16)
        root = generate(spec, tmp_path / f"blocks{block_offset_std}", progress=False)
        trials = read_split(root / session_names(spec)[0] / "data_train.hdf5")
        blocks = sorted({t["block_num"] for t in trials})
        means = [np.concatenate([t["input_features"] for t in trials
                                 if t["block_num"] == b]).mean(axis=0) for b in blocks]
        return float(np.std(means[0] - means[1]))

    with_offsets = block_spread(0.5)
    assert with_offsets > 0.4  # about 0.5 * sqrt(2)
    assert block_spread(0.0) < 0.5 * with_offsets


def test_train_only_sessions_have_no_val_or_test_file(tmp_path):
    spec = tiny(train_only_sessions=1)
    root = generate(spec, tmp_path / "d", progress=False)
    files = {s: sorted(p.name for p in (root / s).iterdir()) for s in session_names(spec)}
    assert files[session_names(spec)[0]] == ["data_train.hdf5"]
    assert all(len(names) == 3 for names in list(files.values())[1:])


def test_word_list_covers_every_phoneme():
    seen = {p for w in synthetic.usable_words() for p in word_phonemes(w)}
    assert seen == set(PHONEMES[1:SIL_ID])
    assert len(synthetic.usable_words()) >= 300


def test_fingerprint_is_stable_and_tracks_the_spec():
    assert tiny().fingerprint() == tiny().fingerprint()
    assert tiny().fingerprint() != tiny(snr=2.0).fingerprint()
    # Generator 2 did not change a generator-1 dataset's identity: cached data is reused.
    assert SyntheticSpec.load().fingerprint() == "a4e482fff7cb"
    assert tiny().fingerprint() == "f04386a8b709"


def test_default_yaml_sets_and_documents_every_knob():
    text = synthetic.DEFAULT_SPEC_PATH.read_text()
    assert set(yaml.safe_load(text)) == set(SyntheticSpec.model_fields) - synthetic.V2_ONLY
    knob_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all("#" in line for line in knob_lines)
    SyntheticSpec.load()


@pytest.mark.parametrize("overrides, expected", [
    ({"n_features": 63}, "n_features=63"),
    ({"snr": -1}, "snr=-1"),
    ({"words_min": 6, "words_max": 3}, "words_min=6 is above words_max=3"),
    ({"train_only_sessions": 3}, "train_only_sessions=3"),
    ({"first_session_date": "2023-08-11"}, "YYYY.MM.DD"),
    ({"n_feature": 64}, "unknown key 'n_feature'; did you mean 'n_features'?"),
])
def test_bad_spec_raises_config_error_naming_the_key(overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("?", r"\?")):
        tiny(**overrides)


def test_cli_rejects_a_bad_set_with_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainable.synthetic", "--out", str(tmp_path / "d"),
         "--set", "n_features=63"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "n_features=63" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_cli_writes_a_dataset_and_reports_progress(tmp_path, capsys):
    sets = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]
    assert synthetic.main(["--out", str(tmp_path / "d"), *sets]) == 0
    err = capsys.readouterr().err
    assert err.count("synthetic: session") == 3
    assert (tmp_path / "d" / synthetic.SPEC_FILE).is_file()
    assert synthetic.main(["--out", str(tmp_path / "d"), "--quiet"]) == 2  # exists


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_split", fail)
    with pytest.raises(KeyboardInterrupt):
        generate(tiny(), tmp_path / "d", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        generate(tiny(), tmp_path / "d", progress=False)
    assert (tmp_path / "d" / "keep.txt").read_text() == "mine"


def test_ensure_synthetic_generates_once_then_reuses(tmp_path, monkeypatch):
    spec = tiny()
    first = ensure_synthetic(spec, tmp_path, progress=False)
    assert first == tmp_path / spec.fingerprint()
    stamp = (first / synthetic.SPEC_FILE).stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(synthetic, "generate", must_not_run)
    assert ensure_synthetic(spec, tmp_path, progress=False) == first
    assert (first / synthetic.SPEC_FILE).stat().st_mtime_ns == stamp


def test_round_trip_through_the_training_loader(tiny_root):
    from trainable.config import load_config
    from trainable.data import load_dataset

    cfg = load_config(overrides={"data.n_features": 16, "data.days_per_batch": 2})
    ds = load_dataset(tiny_root, cfg, splits=("train", "val", "test"))
    assert ds.sessions == session_names(tiny())
    assert ds.report.kept == {"train": 24, "val": 12, "test": 12}
    assert ds.report.total_dropped() == 0
    first = read_split(tiny_root / ds.sessions[0] / "data_train.hdf5")[0]
    np.testing.assert_array_equal(ds.train.features[:first["n_time_steps"]],
                                  first["input_features"])
    assert list(ds.train.labels[0, :ds.train.label_lens[0]]) == list(
        first["seq_class_ids"][:first["seq_len"]])
