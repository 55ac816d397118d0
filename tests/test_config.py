import pytest

from trainable.config import load_config, parse_override
from trainable.errors import ConfigError
from trainable.model import GRUDecoder

ROOT_CFG = "configs/train/official.yaml"


def test_official_config_has_official_values():
    cfg = load_config(ROOT_CFG)
    assert (cfg.optim.eps, cfg.optim.lr_max, cfg.augment.white_noise_std,
            cfg.augment.constant_offset_std) == (0.1, 0.005, 1.0, 0.2)
    assert (cfg.optim.lr_min, cfg.optim.lr_warmup_steps, cfg.optim.lr_decay_steps) == (
        0.0001, 1000, 120000)
    assert (cfg.data.batch_size, cfg.data.days_per_batch, cfg.train.seed) == (64, 4, 10)
    assert len(cfg.data.sessions) == 45
    assert cfg.augment.max_cut == 2


def test_official_model_has_44315177_parameters():
    cfg = load_config(ROOT_CFG)
    model = GRUDecoder(cfg.data.n_features, len(cfg.data.sessions), cfg.model)
    assert sum(p.numel() for p in model.parameters()) == 44_315_177


@pytest.mark.parametrize("override, fragment", [
    ("optim.eps=0", "optim.eps=0"),
    ("optim.eps=-1e-8", "greater than 0"),
    ("optim.lr_max=0", "optim.lr_max"),
    ("augment.white_noise_std=-0.5", "augment.white_noise_std"),
    ("optim.epsilon=0.1", "did you mean 'eps'"),
    ("bogus.key=1", "unknown config key 'bogus'"),
    ("optim.lr_min=0.1", "lr_min=0.1 is above lr_max"),
    ("data.days_per_batch=100", "days_per_batch=100 exceeds"),
    ("model.rnn_dropout=1.5", "model.rnn_dropout"),
    ("train.device=tpu", "train.device"),
])
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["optim.eps", "=3", "optim..eps=1", ""])
def test_bad_set_syntax(text):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override(text)


def test_set_parses_numbers_written_in_e_notation():
    assert parse_override("optim.eps=1e-8") == ("optim.eps", 1e-8)
    assert parse_override("train.amp=true") == ("train.amp", True)


def test_malformed_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {eps: [0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_config(bad)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(bad)) and "(line " in message
