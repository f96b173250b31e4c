"""The musicnn port: parity with the original TensorFlow model, the fast paths, and bad weight files."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.scoring.musicnn import PATCH_FRAMES, WEIGHTS, MusiCNN, MusicnnEmbedder, load_musicnn, log_mel
from curate.scoring.spectra import stft
from tests.conftest import noise_stems, write_track

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / "tests" / "data" / "musicnn_reference.npz"


def _conversion_script():
    spec = importlib.util.spec_from_file_location("convert_musicnn", REPO / "scripts" / "convert_musicnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # TensorFlow is imported only inside its functions
    return mod


@pytest.fixture(scope="module")
def model():
    return load_musicnn()


def test_port_matches_the_original_model(model):
    """Tags, penultimate layer and pooled features of the original model (TensorFlow, float32 weights,
    librosa front end) on a fixed signal, recorded by scripts/convert_musicnn.py."""
    ref = np.load(REFERENCE)
    audio = _conversion_script().reference_signal()
    spec = log_mel(torch.from_numpy(audio))
    patches = torch.stack([spec[i : i + PATCH_FRAMES] for i in range(0, len(spec) - PATCH_FRAMES + 1, PATCH_FRAMES)])
    with torch.inference_mode():
        out = model(patches)
    assert out["tags"].shape == ref["tags"].shape == (2, 50)
    assert np.abs(out["tags"].numpy() - ref["tags"]).max() <= 5e-3
    for k in ("penultimate", "pooled"):
        err = np.abs(out[k].numpy() - ref[k]).max() / np.abs(ref[k]).max()
        assert err <= 1e-2, (k, err)
    # the recorded tags are not trivial: the two halves of the signal are tagged differently
    assert np.abs(ref["tags"][0] - ref["tags"][1]).max() > 0.1


def test_fused_frequency_max_equals_the_full_block():
    torch.manual_seed(0)
    m = MusiCNN()
    blk = m.timbral74
    with torch.no_grad():
        blk.bn.weight.copy_(torch.randn(204))  # both signs of the batch-norm scale
        blk.bn.running_mean.copy_(torch.randn(204))
        blk.bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 1, 40, 96)
        torch.testing.assert_close(blk.max_over_frequency(x), blk(x).amax(dim=3), rtol=1e-5, atol=1e-5)


def test_chunks_with_context_give_the_whole_stem_features(model):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 44100 * 6))).astype(np.float32)
    whole = MusicnnEmbedder(chunk_frames=100_000).stem_features(audio, 44100)
    chunked = MusicnnEmbedder(chunk_frames=64).stem_features(audio, 44100)
    assert whole.shape == (753, 1 + 6 * 16000 // 256)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)


def test_loud_stems_stay_finite(model):
    """The original front end casts the mel power to float16, which overflows on loud stems."""
    t = np.arange(44100 * 4) / 44100
    audio = np.stack([np.sign(np.sin(2 * np.pi * 110 * t))] * 2).astype(np.float32)  # full-scale square wave
    mel = 10 ** log_mel(torch.from_numpy(audio.mean(0)[::3].copy())).numpy()
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float16(10000) * mel.astype(np.float16)).all()  # what the original would compute
    emb = MusicnnEmbedder().embed(audio, stft(audio, 44100), np.array([[0, 44100 * 3], [44100, 44100 * 4]]))
    assert emb.shape == (2, 1706) and np.isfinite(emb).all()


def test_embeddings_tell_drums_from_a_tone():
    t = np.arange(44100 * 3) / 44100
    tone = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    clicks = np.zeros_like(tone)
    clicks[:, ::11025] = 0.9  # four clicks a second
    emb = MusicnnEmbedder()
    a, b = (emb.embed(x, stft(x, 44100), np.array([[0, x.shape[1]]]))[0] for x in (tone, clicks))
    assert np.linalg.norm(a - b) > 0.1 * np.linalg.norm(a)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_bad_weight_files_are_one_line_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(StemcurateError, match="not found"):
        load_musicnn(tmp_path / "missing.safetensors")
    with pytest.raises(StemcurateError, match="not a readable safetensors file"):
        load_musicnn(_write(tmp_path / "junk.safetensors", b"\x00\x01junk" * 100))
    good = {k: v.clone() for k, v in MusiCNN().state_dict().items() if not k.endswith("num_batches_tracked")}
    bad = dict(good, **{"dense.weight": torch.zeros(3, 3)})
    save_file(bad, str(tmp_path / "shape.safetensors"))
    with pytest.raises(StemcurateError, match="dense.weight has shape"):
        load_musicnn(tmp_path / "shape.safetensors")
    nan = dict(good, **{"output.bias": torch.full((50,), float("nan"))})
    save_file(nan, str(tmp_path / "nan.safetensors"))
    with pytest.raises(StemcurateError, match="NaN"):
        load_musicnn(tmp_path / "nan.safetensors")
    partial = {k: v for k, v in good.items() if not k.startswith("mid.")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(StemcurateError, match="not MTT_musicnn weights"):
        load_musicnn(tmp_path / "partial.safetensors")


def test_scan_with_corrupt_weights_exits_2(tmp_path):
    write_track(tmp_path / "data" / "train" / "song", noise_stems(np.random.default_rng(0)))
    weights = _write(tmp_path / "w.safetensors", b"not a model")
    res = CliRunner().invoke(
        app,
        [
            "scan",
            str(tmp_path / "data"),
            "-o",
            str(tmp_path / "m.parquet"),
            "--embedder",
            "musicnn",
            "--musicnn-weights",
            str(weights),
        ],
    )
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and str(weights) in err and "Traceback" not in res.output
    assert not (tmp_path / "m.parquet").exists()


def test_shipped_weights_are_float16_and_small():
    from safetensors import safe_open

    assert WEIGHTS.stat().st_size < 2_000_000
    with safe_open(str(WEIGHTS), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert (WEIGHTS.parent / "MUSICNN_LICENSE.md").read_text().startswith("Copyright (c) Music Technology Group")


def test_fragment_embeddings_equal_the_whole_stem_computation():
    """The network runs only around the fragments (with its receptive field), yet each fragment's
    embedding is what the whole stem's features give."""
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal((2, 44100 * 12))).astype(np.float32)
    bounds = np.array([[0, 44100 * 2], [44100 * 9, 44100 * 11]])  # 7 s apart: computed as two stretches
    emb = MusicnnEmbedder()
    got = emb.embed(audio, stft(audio, 44100), bounds)
    full = emb.stem_features(audio, 44100)
    frames = [(0, int(np.ceil(2 * 16000 / 256))), (int(np.ceil(9 * 16000 / 256)), int(np.ceil(11 * 16000 / 256)))]
    with torch.inference_mode():
        pooled = torch.stack([emb.model.pool(full[None, :, a:b])[0] for a, b in frames])
        want = torch.cat([pooled, emb.model.head(pooled)[0]], dim=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
