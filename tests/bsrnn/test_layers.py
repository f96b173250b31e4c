import pytest
import torch

from bsrnn.bands import BUILTIN_SPECS, BandSpecError, band_edges, validate_spec
from bsrnn.layers import BandSplit, MaskEstimation
from tests.bsrnn.loop_reference import BandSplitLoop, MaskEstimationLoop, copy_band_split, copy_mask_estimation

PER_BIN = 4  # stereo x (re, im)


def test_builtin_band_counts_cover_every_bin():
    counts = {name: len(band_edges(spec)) for name, spec in BUILTIN_SPECS.items()}
    assert counts == {"vocals": 41, "bass": 30, "drums": 55, "other": 41}
    for spec in BUILTIN_SPECS.values():
        edges = band_edges(spec)
        assert edges[0][0] == 0 and edges[-1][1] == 1025
        assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))


@pytest.mark.parametrize(
    "spec, message",
    [
        ([[1000, 100], [500, 50]], "edges must increase"),
        ([[1000, 2000]], "at most the span"),
        ([[1000, 0]], "step must be > 0"),
        ([[30000, 1000]], "beyond Nyquist"),
        ([], "empty"),
        ("vocals", "pairs"),
    ],
)
def test_invalid_specs_are_rejected(spec, message):
    with pytest.raises(BandSpecError, match=message):
        validate_spec(spec, 44100)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_vectorised_layers_match_the_per_band_loop(name):
    torch.manual_seed(0)
    bands = band_edges(BUILTIN_SPECS[name])
    features = bands[-1][1] * PER_BIN
    x = torch.randn(2, 37, features)
    loop_split, vec_split = BandSplitLoop(bands, PER_BIN, 32), BandSplit(bands, PER_BIN, 32)
    for p in loop_split.parameters():  # non-trivial norm parameters too
        torch.nn.init.normal_(p, std=0.5)
    copy_band_split(loop_split, vec_split)
    z_loop, z_vec = loop_split(x), vec_split(x)
    assert z_vec.shape == (2, 37, len(bands), 32)
    assert len(vec_split.layout.groups) < len(bands)  # fewer kernel calls than bands
    assert torch.allclose(z_loop, z_vec, atol=1e-5)

    loop_mask, vec_mask = MaskEstimationLoop(bands, PER_BIN, 32, 64), MaskEstimation(bands, PER_BIN, 32, 64)
    for p in loop_mask.parameters():
        torch.nn.init.normal_(p, std=0.3)
    copy_mask_estimation(loop_mask, vec_mask)
    m_loop, m_vec = loop_mask(z_loop), vec_mask(z_loop)
    assert m_vec.shape == x.shape
    assert torch.allclose(m_loop, m_vec, atol=1e-5)


def test_any_number_of_frames():
    bands = band_edges(BUILTIN_SPECS["bass"])
    split = BandSplit(bands, PER_BIN, 16)
    for t in (1, 5, 263, 300):
        assert split(torch.randn(1, t, bands[-1][1] * PER_BIN)).shape == (1, t, 30, 16)
