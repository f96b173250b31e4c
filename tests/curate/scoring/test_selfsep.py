"""Self-separation evidence (`curate scan --separator`) and its place in `quality`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bsrnn.separator import Separator
from curate.cli import app
from curate.data.schema import read_manifest
from curate.scoring.quality import quality, reasons, separation_factor
from curate.scoring.selfsep import separation_db
from tests.conftest import random_models, write_track

runner = CliRunner()


class Gain(torch.nn.Module):
    def __init__(self, g: float):
        super().__init__()
        self.g = g

    def forward(self, x):
        return x * self.g


def test_scores_follow_the_models(tmp_path):
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal((2, 44100 * 2))).astype(np.float32) for s in ("vocals", "bass", "drums")}
    write_track(tmp_path / "train" / "t", stems)
    rows = [dict(track="t", stem=s, path=f"train/t/{s}.wav", start=a, end=a + 44100) for s in stems for a in (0, 22050)]
    frame = pd.DataFrame(rows)
    # the "vocals" model keeps everything, the "bass" model a tenth of the amplitude (-20 dB)
    sep = Separator({"vocals": Gain(1.0), "bass": Gain(0.1)})
    got = separation_db(frame, tmp_path, sep)
    assert np.allclose(got[frame["stem"] == "vocals"], 20.0, atol=0.01)
    assert np.allclose(got[frame["stem"] == "bass"], -20.0, atol=0.01)
    assert np.isnan(got[frame["stem"] == "drums"]).all()  # no drums model
    assert np.isnan(separation_db(frame, tmp_path, Separator({"vocals": Gain(1.0)}))).all()  # one model: no comparison


def test_quality_folds_separation_in():
    assert separation_factor(np.nan) == pytest.approx(1.0)
    assert separation_factor(-3.0) == pytest.approx(0.5)
    assert separation_factor(0.0) == pytest.approx(1 / (1 + 10**-1.5))
    assert quality(0.9, -60.0, -3.0) == pytest.approx(0.45, abs=1e-3)
    assert quality(0.9, -60.0) == pytest.approx(0.9, abs=1e-3)
    frame = pd.DataFrame(
        dict(
            stem=["bass"],
            quality=[0.03],
            label_score=[1.0],
            predicted_stem=["bass"],
            bleed_db=[-60.0],
            bleed_stem=["drums"],
            separation_db=[-9.0],
        )
    )
    assert "separator hears another stem (-9 dB)" in reasons(frame, 0.7)["reason"].iloc[0]


def test_scan_with_separator(synth_dir, tmp_path):
    models = random_models(tmp_path / "saved_models")
    out = tmp_path / "m.parquet"
    res = runner.invoke(app, ["scan", str(synth_dir), "-o", str(out), "--separator", str(models)])
    assert res.exit_code == 0, res.output
    f = read_manifest(out).frame
    vb = f["stem"].isin(["vocals", "bass"])
    assert np.isfinite(f.loc[vb, "separation_db"]).all() and f.loc[~vb, "separation_db"].isna().all()
    expected = quality(f["label_score"], f["bleed_db"], f["separation_db"])
    assert np.allclose(f["quality"], expected, atol=1e-6)
    (tmp_path / "junk.ckpt").write_bytes(b"x")
    res = runner.invoke(
        app, ["scan", str(synth_dir), "-o", str(tmp_path / "n.parquet"), "--separator", str(tmp_path / "junk.ckpt")]
    )
    assert res.exit_code == 2 and "junk.ckpt" in res.output and not (tmp_path / "n.parquet").exists()
