import numpy as np
import pytest
import torch
from torch import nn

from bsrnn.separator import Separator

SR = 44100


class Gain(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = nn.Parameter(torch.tensor(float(g)), requires_grad=False)

    def forward(self, x):
        return x * self.g


@pytest.mark.parametrize("seconds", [0.01, 1.0, 3.0, 7.3, 20.0])
def test_identity_model_returns_the_input_exactly(seconds):
    x = torch.randn(2, int(seconds * SR))
    y = Separator(nn.Identity(), sample_rate=SR).separate(x)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-5


def test_no_gain_ripple_and_other_hops():
    x = torch.ones(1, 12 * SR)
    for hop in (2.5, 1.5, 3.0, 0.7):
        y = Separator(Gain(0.5), sample_rate=SR, hop_s=hop, batch_size=3).separate(x)
        assert torch.allclose(y, 0.5 * x, atol=1e-6), hop  # the seed's unwindowed OLA ripples 0.89-1.07


def test_mono_and_numpy_input():
    x = np.random.default_rng(0).standard_normal((1, SR)).astype(np.float32)
    y = Separator(nn.Identity(), sample_rate=SR).separate(x)
    assert np.abs(y.numpy() - x).max() < 1e-5


def test_bad_arguments():
    with pytest.raises(ValueError):
        Separator(nn.Identity(), hop_s=4.0)
    with pytest.raises(ValueError):
        Separator(nn.Identity()).separate(torch.zeros(10))
