"""The reference pool: shipped and current, joins the fits, and makes one-track scans scorable."""

import numpy as np
import pandas as pd
import pytest

import curate.reference as reference
from curate.common.errors import StemcurateError
from curate.reference import (
    POOL_FILE,
    SYNTH_POOL,
    SynthPool,
    cached_synth_pool,
    embed_dataset,
    load_pool,
    reference_pool,
)
from curate.scan import scan
from curate.scantrack import ScoreConfig
from curate.scoring.classify import score_labels
from curate.scoring.labelmodel import LabelModelConfig, ReferenceUnits
from curate.scoring.oof import out_of_fold_proba
from curate.simulate.synth import synth_dataset
from tests.conftest import MUSDBHQ_SAMPLE, need_shared


def test_shipped_pool_is_current(tmp_path):
    """The shipped embeddings are those the current code computes for the pool's first track
    (rebuild with scripts/build_reference_pool.py when this fails)."""
    synth_dataset(
        tmp_path, tracks=1, seconds=SYNTH_POOL.seconds, seed=SYNTH_POOL.seed
    )  # track 0 does not depend on the count
    for part in ("features", "musicnn"):
        shipped = load_pool(part)
        fresh = embed_dataset(tmp_path, part, prefix="synth:")
        name = fresh.units["track"].iloc[0]
        sel = (shipped.units["track"] == name).to_numpy()
        assert sel.sum() == len(fresh) > 0
        assert shipped.units[sel]["stem"].tolist() == fresh.units["stem"].tolist()
        scale = np.abs(fresh.emb).max(axis=0) + 1e-3
        err = np.abs(shipped.emb[sel] - fresh.emb) / scale
        assert err.max() < 0.02, (part, float(err.max()))


def test_pool_parts_combine_and_unknown_parts_are_none():
    both = load_pool("features+musicnn")
    assert both.emb.shape[1] == load_pool("features").emb.shape[1] + load_pool("musicnn").emb.shape[1] == 109 + 1706
    assert set(both.units["stem"]) == {"vocals", "bass", "drums", "other"}
    assert both.units["track"].nunique() == SYNTH_POOL.tracks
    assert load_pool("panns") is None


def test_unreadable_pool_file_is_an_error(tmp_path):
    bad = tmp_path / "pool.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(StemcurateError, match="unreadable reference pool"):
        load_pool("features", bad)


def test_reference_rows_teach_every_fold_and_are_never_predicted():
    rng = np.random.default_rng(0)
    # the dataset's own labels are all wrong; a clean reference with weight 1 still tells the classes apart
    x = np.r_[rng.normal(-2, 1, (20, 2)), rng.normal(2, 1, (20, 2))]
    wrong = np.r_[["b"] * 20, ["a"] * 20]
    groups = np.repeat(np.arange(8), 5)
    xr = np.r_[rng.normal(-2, 1, (200, 2)), rng.normal(2, 1, (200, 2))]
    yr = np.r_[["a"] * 200, ["b"] * 200]
    p = out_of_fold_proba(x, wrong, groups, ["a", "b"], reference=(xr, yr, 1.0))
    assert p.shape == (40, 2)
    assert np.mean(p[:20, 0] > 0.5) > 0.9 and np.mean(p[20:, 1] > 0.5) > 0.9
    # one track: no fold without the reference, the reference alone teaches the model
    p1 = out_of_fold_proba(x[:5], wrong[:5], np.zeros(5), ["a", "b"], reference=(xr, yr, 1.0))
    assert np.all(p1[:, 0] > 0.5)
    with pytest.raises(ValueError, match="at least 2 tracks"):
        out_of_fold_proba(x[:5], wrong[:5], np.zeros(5), ["a", "b"])


def test_reference_weight_shrinks_with_the_dataset():
    rng = np.random.default_rng(1)
    frames, embs = [], []
    for t in range(8):
        for k, stem in enumerate(("bass", "vocals")):
            frames.append({"track": f"t{t}", "stem": stem, "start": 0, "end": 100})
            embs.append(rng.normal(3 * k, 1, (2, 4)))
    frame = pd.DataFrame(frames)
    ref = ReferenceUnits(pd.DataFrame({"track": "r", "stem": ["bass", "vocals"] * 50}), rng.normal(0, 1, (100, 4)))
    cfg = LabelModelConfig(reference_weight=4.0, use_alignment=False)
    res = score_labels(frame, np.stack(embs), config=cfg, reference=ref)
    own = 32 * 7 / 8  # a unit's fits see the other tracks' units
    assert res.reference_units == 100
    assert res.dataset_share == pytest.approx(own / (own + 100 * 4 / 8))
    assert score_labels(frame, np.stack(embs), config=cfg).dataset_share == 1.0


def test_one_track_scan_has_label_scores_from_the_pool(tmp_path):
    """The real MUSDB18 excerpt alone: the pool and the pretrained embedder give label scores, and its
    clean stems keep quality >= 0.7."""
    need_shared()
    res = scan(MUSDBHQ_SAMPLE, output=tmp_path / "m.parquet", score=ScoreConfig(embedder="musicnn"))
    f = res.fragments
    assert res.tracks == 1 and f["label_score"].notna().all()
    assert (f["predicted_stem"] == f["stem"]).all()
    assert (f["quality"] >= 0.7).all(), f[["stem", "label_score", "bleed_db", "quality"]]
    assert res.labels.dataset_share < 0.5 and any("reference pool" in w for w in res.warnings)
    # without the pool there is nothing to learn from
    res2 = scan(
        MUSDBHQ_SAMPLE, output=tmp_path / "m2.parquet", score=ScoreConfig(embedder="musicnn", reference_pool=False)
    )
    assert res2.fragments["label_score"].isna().all() and res2.labels is None


def test_user_reference_folder_joins_the_pool(tmp_path):
    synth_dataset(tmp_path / "trusted", tracks=2, seconds=7, seed=5)
    pool = reference_pool("features", synth=False, dirs=(str(tmp_path / "trusted"),))
    assert pool.units["track"].str.startswith("reference0:").all() and pool.units["track"].nunique() == 2
    both = reference_pool("features", dirs=(str(tmp_path / "trusted"),))
    assert len(both) == len(pool) + len(load_pool("features"))
    with pytest.raises(StemcurateError):
        reference_pool("features", synth=False, dirs=(str(tmp_path / "nothing"),))
    assert POOL_FILE.is_file()


def test_built_pools_are_cached(tmp_path, monkeypatch):
    small = SynthPool(tracks=2, seconds=7.0, seed=3)
    first = cached_synth_pool("features", pool=small, folder=tmp_path)
    assert len(list(tmp_path.glob("reference_features_*.npz"))) == 1
    monkeypatch.setattr(reference, "build_synth_pool", lambda *a, **k: pytest.fail("rebuilt a cached pool"))
    again = cached_synth_pool("features", pool=small, folder=tmp_path)
    assert again.units.equals(first.units)
    np.testing.assert_allclose(again.emb, first.emb, rtol=1e-3, atol=1e-3)  # stored as float16
    with pytest.raises(BaseException, match="rebuilt"):  # other settings: another key
        cached_synth_pool("features", pool=SynthPool(tracks=2, seconds=7.0, seed=4), folder=tmp_path)


def test_reference_option_through_the_cli(tmp_path, synth_dir):
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.data.schema import read_manifest

    runner = CliRunner()
    missing = tmp_path / "nope"
    res = runner.invoke(app, ["scan", str(synth_dir), "-o", str(tmp_path / "m.parquet"), "--reference", str(missing)])
    assert res.exit_code == 2 and str(missing) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    synth_dataset(tmp_path / "trusted", tracks=2, seconds=7, seed=9)
    res = runner.invoke(
        app,
        [
            "scan",
            str(synth_dir),
            "-o",
            str(tmp_path / "m.parquet"),
            "--embedder",
            "features",
            "--reference",
            str(tmp_path / "trusted"),
            "--no-reference-pool",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = read_manifest(tmp_path / "m.parquet").meta
    assert 0 < meta["label_model"]["reference_units"] < len(load_pool("features"))
    assert 0 < meta["label_model"]["dataset_share"] < 1
