import pytest
import torch

from bsrnn.model import BSRNN, BSRNNConfig, CheckpointError
from bsrnn.separator import Separator

SR = 44100


@pytest.mark.parametrize("target, bands", [("vocals", 41), ("bass", 30), ("drums", 55), ("other", 41)])
def test_band_counts(target, bands):
    assert BSRNN(BSRNNConfig.preset("tiny", target)).n_bands == bands


@pytest.mark.parametrize("seconds", [1.0, 3.0, 7.3])
def test_any_input_length(seconds):
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.preset("tiny", "bass")).eval()
    x = torch.randn(2, 2, int(seconds * SR)) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.preset("tiny", "drums")).eval()
    path = model.save(tmp_path / "drums.ckpt")
    again = BSRNN.load(path)
    assert again.config == model.config
    x = torch.randn(1, 2, SR) * 0.1
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_bad_checkpoints(tmp_path):
    model = BSRNN(BSRNNConfig.preset("tiny", "vocals"))
    ckpt = {"hparams": {**model.config.__dict__, "dropout": 0.1}, "state_dict": model.state_dict()}
    torch.save(ckpt, tmp_path / "unknown.ckpt")
    with pytest.raises(CheckpointError, match="unknown: \\['dropout'\\]"):
        BSRNN.load(tmp_path / "unknown.ckpt")
    hp = dict(model.config.__dict__)
    hp.pop("rnn_dim")
    torch.save({"hparams": hp, "state_dict": model.state_dict()}, tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="missing: \\['rnn_dim'\\]"):
        BSRNN.load(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        BSRNN.load(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        BSRNN.load(tmp_path / "junk.ckpt")


def test_paper_size_defaults():
    cfg = BSRNNConfig.preset("paper", "vocals")
    assert (cfg.fc_dim, cfg.rnn_dim, cfg.num_layers, cfg.mlp_dim) == (128, 256, 12, 512)
    with pytest.raises(ValueError, match="unknown model size"):
        BSRNNConfig.preset("huge")
    with pytest.raises(ValueError, match="beyond Nyquist"):
        BSRNNConfig(target="vocals", bands=[[30000, 1000]])


def test_separator_runs_the_model_on_long_audio():
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.preset("tiny", "vocals")).eval()
    x = torch.randn(2, int(7.3 * SR)) * 0.1
    y = Separator(model, sample_rate=SR, batch_size=2).separate(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
