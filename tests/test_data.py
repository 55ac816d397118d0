import numpy as np
import pytest
from support.h5 import write_dataset, write_trials

from trainable.batches import DayBatchSampler, validation_batches
from trainable.data import Dataset, load_dataset
from trainable.errors import DataError


def test_reads_and_packs(tiny_data, tiny_config):
    ds = load_dataset(tiny_data, tiny_config())
    assert ds.sessions == ["t15.2023.08.11", "t15.2023.08.12", "t15.2023.08.13"]
    assert len(ds.train) == 18 and len(ds.val) == 9
    assert ds.train.features.dtype == np.float32
    assert ds.train.features.shape == (18 * 80, 16)
    batch = ds.train.batch([0, 5])
    assert batch["features"].shape == (2, 80, 16)
    assert batch["labels"].shape == (2, 6)
    assert int(batch["labels"].min()) >= 1



def test_train_only_session_is_allowed(tmp_path, tiny_config):
    root = write_dataset(tmp_path / "d", n_features=16)
    (root / "t15.2023.08.12" / "data_val.hdf5").unlink()
    ds = load_dataset(root, tiny_config())
    assert len(ds.val) == 6 and len(ds.val.days) == 2


@pytest.mark.parametrize("defect, fragment", [
    ("missing_features", "trial_0001: missing dataset 'input_features'"),
    ("missing_attr", "trial_0001: missing attribute 'n_time_steps'"),
    ("nan", "trial_0001: input_features holds NaN/Inf"),
    ("label_range", "label id 41 outside 1..40"),
    ("seq_len_long", "seq_len=501 is longer than the 500 stored labels"),
    ("wrong_features", "17 features but data.n_features=16"),
    ("all_too_short", "no usable training trials"),
])
def test_validation_errors_name_file_and_trial(tmp_path, tiny_config, defect, fragment):
    root = write_dataset(tmp_path / "d", n_features=16, defect=defect)
    with pytest.raises(DataError) as err:
        load_dataset(root, tiny_config())
    assert fragment in str(err.value)
    if defect != "all_too_short":
        assert "t15.2023.08.11/data_train.hdf5" in str(err.value)


def test_nonfinite_drop_policy_counts(tmp_path, tiny_config):
    root = write_dataset(tmp_path / "d", n_features=16, defect="nan")
    ds = load_dataset(root, tiny_config(data__nonfinite_features="drop"))
    assert ds.report.dropped_nonfinite == {"train": 1}
    assert len(ds.train) == 17


def test_too_short_trials_are_dropped_and_counted(tmp_path, tiny_config):
    root = write_dataset(tmp_path / "d", n_features=16, defect="too_short")
    ds = load_dataset(root, tiny_config())
    assert ds.report.dropped_too_short == {"train": 1}
    assert len(ds.train) == 17
    assert 0 < ds.report.dropped_fraction() < 0.05


@pytest.mark.parametrize("random_cut, limit", [
    (0, 34),  # no cut: (34 - 14) // 4 + 1 = 6 outputs for 6 labels
    (1, 34),  # randint(0, 1) always cuts 0 frames
    (3, 36),  # official: cuts of up to 2 frames
    (6, 39),  # cuts of up to 5 frames
])
def test_too_short_filter_keeps_a_trial_exactly_at_the_limit_after_the_largest_cut(
        tmp_path, tiny_config, random_cut, limit):
    """A trial is kept when, after the largest random cut (random_cut - 1 frames) and the
    patching (size 14, stride 4), CTC still gets one output per label; a frame less drops
    it (official zero_infinity=False: its loss would be infinite)."""
    import torch

    from trainable.model import GRUDecoder

    labels = [5, 7, 9, 11, 13, 15]  # no equal neighbours: CTC needs exactly 6 outputs
    root = write_trials(tmp_path / "d", {
        "t15.2023.08.11": {"train": [(limit, labels), (limit - 1, labels)]}})
    cfg = tiny_config(augment__random_cut=random_cut, data__days_per_batch=1)
    ds = load_dataset(root, cfg)
    assert ds.train.n_frames.tolist() == [limit]
    assert ds.report.dropped_too_short == {"train": 1}
    # the trainer's CTC input length for the kept trial after the largest cut: one per label
    model = GRUDecoder(16, 1, cfg.model)
    largest_cut = max(random_cut - 1, 0)
    assert int(model.output_lengths(torch.tensor(limit - largest_cut))) == len(labels)


def test_truncated_and_non_hdf5_files(tmp_path, tiny_config):
    root = write_dataset(tmp_path / "d", n_features=16)
    path = root / "t15.2023.08.11" / "data_train.hdf5"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_dataset(root, tiny_config())
    path.write_text("hello")
    with pytest.raises(DataError, match=r"data_train\.hdf5: not a readable HDF5 file"):
        load_dataset(root, tiny_config())


def test_missing_and_empty_folders(tmp_path, tiny_config):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope", tiny_config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no session folders"):
        load_dataset(tmp_path / "empty", tiny_config())


def test_days_per_batch_larger_than_days(tiny_data, tiny_config):
    with pytest.raises(DataError, match="days_per_batch=4 but only 3 sessions"):
        load_dataset(tiny_data, tiny_config(data__days_per_batch=4))


def test_sampler_follows_official_rule(tiny_data, tiny_config):
    ds = load_dataset(tiny_data, tiny_config())
    sampler = DayBatchSampler(ds.train, batch_size=8, days_per_batch=2, seed=1)
    day_counts = np.zeros(3)
    for _ in range(300):
        idx = sampler.next_indices()
        days = ds.train.day[idx]
        assert len(idx) == 8
        assert len(set(days[:4])) == 1 and len(set(days[4:])) == 1  # 4 trials per day
        assert days[0] != days[4]  # distinct days
        day_counts[np.unique(days)] += 1
    assert np.all(np.abs(day_counts / 300 - 2 / 3) < 0.1)  # days drawn uniformly


@pytest.mark.parametrize("batch_size, days_per_batch", [(16, 3), (7, 2), (10, 3)])
def test_sampler_batch_has_exactly_batch_size_trials_when_not_divisible(
        tiny_data, tiny_config, batch_size, days_per_batch):
    """Official rule: ceil(bs/dpb) trials per day, then the surplus removed one trial at a
    time from the end of a uniformly chosen day of the batch."""
    ds = load_dataset(tiny_data, tiny_config())
    per_day = -(-batch_size // days_per_batch)
    surplus = per_day * days_per_batch - batch_size
    sampler = DayBatchSampler(ds.train, batch_size, days_per_batch, seed=2)
    removed = np.zeros(days_per_batch)
    for _ in range(400):
        idx = sampler.next_indices()
        assert len(idx) == batch_size
        days = ds.train.day[idx]
        # trials of a day stay together, in the order of the batch's days
        runs = [d for i, d in enumerate(days) if i == 0 or d != days[i - 1]]
        assert len(runs) == len(set(runs)) == days_per_batch
        counts = np.array([np.sum(days == d) for d in runs])
        assert counts.min() >= per_day - surplus and counts.max() <= per_day
        removed += per_day - counts
    # every position in the batch's day order loses trials equally often
    assert np.all(np.abs(removed / removed.sum() - 1 / days_per_batch) < 0.08)


def test_sampler_divisible_case_keeps_its_stream(tiny_data, tiny_config):
    """No surplus, no extra draws: the divisible case gives the batches it always gave."""
    ds = load_dataset(tiny_data, tiny_config())
    rng = np.random.default_rng(5)
    sampler = DayBatchSampler(ds.train, 8, 2, seed=5)
    for _ in range(20):
        days = rng.choice(ds.train.days, size=2, replace=False)
        by_day = [ds.train.trials_of_day(int(d)) for d in days]
        expected = np.concatenate([t[rng.integers(0, len(t), 4)] for t in by_day])
        assert np.array_equal(sampler.next_indices(), expected)


def test_sampler_is_deterministic_and_resumable(tiny_data, tiny_config):
    ds = load_dataset(tiny_data, tiny_config())
    a = DayBatchSampler(ds.train, 8, 2, seed=3)
    b = DayBatchSampler(ds.train, 8, 2, seed=3)
    for _ in range(5):
        a.next_indices()
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.next_indices(), b.next_indices())


def test_validation_batches_single_day_fixed_order(tiny_data, tiny_config):
    ds = load_dataset(tiny_data, tiny_config())
    batches = list(validation_batches(ds.val, batch_size=2))
    assert [len(b) for b in batches] == [2, 1, 2, 1, 2, 1]
    for b in batches:
        assert len(set(ds.val.day[b])) == 1
    assert np.array_equal(np.concatenate(batches), np.arange(9))


def test_cache_round_trip_memory_maps(tiny_data, tiny_config, tmp_path):
    ds = load_dataset(tiny_data, tiny_config())
    ds.save_cache(tmp_path / "cache")
    back = Dataset.load_cache(tmp_path / "cache")
    assert isinstance(back.train.features, np.memmap)
    assert back.fingerprint() == ds.fingerprint()


def test_ctc_needs_a_blank_between_repeated_labels():
    import torch

    from trainable.data import ctc_min_frames

    assert ctc_min_frames(np.array([5, 7, 9])) == 3
    assert ctc_min_frames(np.array([5, 5, 7])) == 4
    log_probs = torch.randn(3, 1, 41).log_softmax(-1)
    loss = torch.nn.functional.ctc_loss(log_probs, torch.tensor([[5, 5, 7]]), torch.tensor([3]),
                                        torch.tensor([3]), reduction="none")
    assert torch.isinf(loss).all()  # 3 frames are too few for [5, 5, 7]: such trials are dropped


def test_session_order_maps_trials_to_their_day(tiny_data, tiny_config):
    order = ["t15.2023.08.13", "t15.2023.08.11", "t15.2023.08.12"]
    default = load_dataset(tiny_data, tiny_config())
    reordered = load_dataset(tiny_data, tiny_config(data__sessions=order))
    first = default.train.features[: default.train.n_frames[0]]  # session 08.11, trial 0
    idx = int(np.flatnonzero(reordered.train.day == 1)[0])
    start = reordered.train.offsets[idx]
    assert np.array_equal(reordered.train.features[start : start + len(first)], first)
