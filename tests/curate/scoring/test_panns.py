"""The PANNs embedder through its real loading path, with a Cnn14 checkpoint made here (random weights)."""

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.scoring.panns import STEM_CLASSES, PannsEmbedder, audioset_labels, load_cnn14, new_cnn14

runner = CliRunner()


@pytest.fixture(scope="module")
def cnn14_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_random.pth"
    torch.save({"model": new_cnn14().state_dict(), "iteration": 0}, path)
    return path


def test_embeddings_have_2048_dims(cnn14_checkpoint):
    emb = PannsEmbedder(cnn14_checkpoint)
    rng = np.random.default_rng(0)
    e, p = emb.run(0.1 * rng.standard_normal((3, 32000 * 2)).astype(np.float32))
    assert e.shape == (3, 2048) and p.shape == (3, 527)
    assert np.isfinite(e).all() and ((p >= 0) & (p <= 1)).all()
    assert emb.stem_scores(p).shape == (3, 4)


def test_stem_class_map_names_exist():
    labels = set(audioset_labels())
    assert len(audioset_labels()) == 527
    for stem, names in STEM_CLASSES.items():
        present = [n for n in names if n in labels]
        assert len(present) >= 2, stem
    assert {"Singing", "Bass guitar", "Drum kit", "Piano"} <= labels


def test_scan_with_panns_through_the_cli(cnn14_checkpoint, synth_dir, tmp_path):
    out = tmp_path / "m.parquet"
    # the synthetic reference pool would be embedded with Cnn14 once (cached; test_reference.py covers that path)
    r = runner.invoke(
        app,
        [
            "scan",
            str(synth_dir),
            "-o",
            str(out),
            "--embedder",
            "panns",
            "--panns-checkpoint",
            str(cnn14_checkpoint),
            "--no-reference-pool",
        ],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(out)
    assert df["quality"].notna().all() and df["label_score"].between(0, 1).all()


def test_missing_and_wrong_checkpoints(tmp_path, synth_dir):
    with pytest.raises(StemcurateError, match="not found"):
        load_cnn14(tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": torch.nn.Linear(3, 3).state_dict()}, wrong)
    with pytest.raises(StemcurateError, match="not a Cnn14 checkpoint"):
        load_cnn14(wrong)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(StemcurateError, match="not a loadable PANNs checkpoint"):
        load_cnn14(junk)
    for args, message in [
        (["--panns-checkpoint", str(tmp_path / "nope.pth")], "not found"),
        (["--panns-checkpoint", str(wrong)], "not a Cnn14 checkpoint"),
        ([], "needs --panns-checkpoint"),
    ]:
        r = runner.invoke(
            app, ["scan", str(synth_dir), "-o", str(tmp_path / "m.parquet"), "--embedder", "panns", *args]
        )
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith("error: ") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
