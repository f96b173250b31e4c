"""The same code on a CUDA GPU: model, training, separation, evaluation and the self-separation scan.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with ``pytest tests/test_cuda.py``.
Each test compares the GPU result with the CPU result of the same code (TF32 off, so that float32
matrix products are float32 on both).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from bsrnn.model import BSRNN, BSRNNConfig
from bsrnn.separator import Separator
from tests.conftest import random_models, tiny_train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
runner = CliRunner()
TARGETS = ("vocals", "bass", "drums", "other")


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> None:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    err = float((a - b).norm() / (b.norm() + 1e-12))
    assert err < rel, err


@pytest.mark.parametrize("target", TARGETS)
def test_forward_matches_cpu(target):
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.preset("tiny", target)).eval()
    x = 0.1 * torch.randn(2, 2, 44100)
    with torch.no_grad():
        ref = model(x)
        got = model.to("cuda")(x.cuda())
    assert got.device.type == "cuda" and got.shape == ref.shape
    _close(got, ref)


def test_separator_on_cuda_matches_cpu(tmp_path):
    torch.manual_seed(1)
    BSRNN(BSRNNConfig.preset("tiny", "vocals")).save(tmp_path / "v.ckpt")
    audio = 0.1 * np.random.default_rng(0).standard_normal((2, 5 * 44100)).astype(np.float32)
    cpu = Separator.from_checkpoint(tmp_path / "v.ckpt", device="cpu").separate(audio)
    gpu_sep = Separator.from_checkpoint(tmp_path / "v.ckpt", device="cuda")
    assert next(gpu_sep.model.parameters()).device.type == "cuda"
    gpu = gpu_sep.separate(audio)
    assert gpu.device.type == "cpu"  # results come back on the CPU
    _close(gpu, cpu)
    # a model built on the CPU is moved to the separator's device
    on_cpu = BSRNN.load(tmp_path / "v.ckpt")
    _close(Separator(on_cpu, device="cuda").separate(audio), cpu)


def test_train_on_gpu_and_use_the_model_on_cpu(synth_dir, tmp_path):
    from curate.scan import scan
    from pipelines.config import model_config, train_config
    from pipelines.evaluate import evaluate
    from pipelines.train import train

    scan(synth_dir, output=tmp_path / "m.parquet", score=None)
    cfg = train_config(
        {},
        batch_size=4,
        crop_s=1.0,
        valid_fraction=0.0,
        val_every=1000,
        schedule="constant",
        warmup_steps=0,
        max_steps=30,
        lr=3e-3,
    )
    runs = [
        train(
            tmp_path / "m.parquet",
            model=model_config("tiny", "bass"),
            config=cfg,
            out=tmp_path / f"run{i}",
            export_dir=tmp_path / f"e{i}",
            accelerator="gpu",
            devices=1,
            progress=False,
        )
        for i in range(2)
    ]
    assert runs[0].global_step == 30
    # the exported checkpoint loads on a machine without a GPU
    model = BSRNN.load(runs[0].exported, map_location="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    twin = BSRNN.load(runs[1].exported, map_location="cpu")
    # same seed, same data: the same model up to GPU kernel nondeterminism
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3), k
    on_gpu = evaluate(
        {"bass": BSRNN.load(runs[0].exported, map_location="cuda")}, synth_dir, subset="test", device="cuda"
    )
    on_cpu = evaluate({"bass": model}, synth_dir, subset="test", device="cpu")
    assert np.allclose(on_gpu["usdr"], on_cpu["usdr"], atol=1e-3), (on_gpu, on_cpu)


def test_cli_on_cuda(synth_dir, tmp_path):
    from curate.cli import app as curate_app
    from pipelines.cli import app

    models = random_models(tmp_path / "saved_models")
    res = runner.invoke(app, ["env"])
    assert res.exit_code == 0 and "cuda       yes" in res.output, res.output
    mix = next(synth_dir.glob("test/*/mixture.wav"))
    outs = {}
    for dev in ("cpu", "cuda"):
        res = runner.invoke(
            app, ["separate", "-i", str(mix), "-o", str(tmp_path / dev), "-c", str(models), "--device", dev]
        )
        assert res.exit_code == 0, res.output
        outs[dev] = sf.read(next((tmp_path / dev).rglob("vocals.wav")))[0]
    _close(torch.from_numpy(outs["cuda"]), torch.from_numpy(outs["cpu"]), rel=1e-3)
    res = runner.invoke(
        app, ["evaluate", str(models), "--data", str(synth_dir), "--device", "cuda", "-o", str(tmp_path / "ev.parquet")]
    )
    assert res.exit_code == 0, res.output
    for dev in ("cpu", "cuda"):
        res = runner.invoke(
            curate_app,
            [
                "scan",
                str(synth_dir),
                "-o",
                str(tmp_path / f"{dev}.parquet"),
                "--separator",
                str(models),
                "--device",
                dev,
            ],
        )
        assert res.exit_code == 0, res.output
    a, b = pd.read_parquet(tmp_path / "cpu.parquet"), pd.read_parquet(tmp_path / "cuda.parquet")
    ok = a["separation_db"].notna()
    assert ok.any() and np.allclose(a.loc[ok, "separation_db"], b.loc[ok, "separation_db"], atol=0.05)
    args = tiny_train(tmp_path / "cuda.parquet", "--accelerator", "gpu", "--devices", "1", out=tmp_path / "run")
    res = runner.invoke(app, args + ["--export-dir", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "exp" / "vocals" / "vocals.ckpt").is_file()
