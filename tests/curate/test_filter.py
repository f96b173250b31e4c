import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.data.schema import read_manifest, write_manifest
from curate.filter import filter_manifest
from curate.scoring.quality import bleed_factor, quality, reasons

runner = CliRunner()


def _scored(tmp_path, n=8):
    df = pd.DataFrame(
        {
            "track": [f"t{i // 4}" for i in range(n)],
            "subset": "train",
            "stem": ["vocals", "bass", "drums", "other"] * (n // 4),
            "path": "x.wav",
            "start": 0,
            "end": 1000,
            "sample_rate": 44100,
            "channels": 2,
            "rms_db": -20.0,
        }
    )
    df["label_score"] = [0.99, 0.2, 0.95, 0.9, 0.98, 0.97, 0.5, 0.99][:n]
    df["predicted_stem"] = ["vocals", "drums", "drums", "other", "vocals", "bass", "drums", "other"][:n]
    df["bleed_db"] = [-40, -40, -40, -12, -35, -60, -40, -22][:n]
    df["bleed_stem"] = ["bass", None, "bass", "drums", "other", None, "bass", "vocals"][:n]
    df["quality"] = quality(df["label_score"], df["bleed_db"])
    path = tmp_path / "manifest.parquet"
    write_manifest(df, path, root=tmp_path)
    return path, df


def test_quality_formula_golden_values():
    assert bleed_factor(-22.0) == pytest.approx(0.5)
    assert bleed_factor(-24.0) == pytest.approx(1 / 1.1)
    assert bleed_factor(np.nan) == pytest.approx(1.0)
    assert quality(0.8, -80.0) == pytest.approx(0.8, abs=1e-6)
    assert quality(np.nan, -20.0) == pytest.approx(1 / (1 + 10**1.0), abs=1e-6)


def test_every_rejection_has_a_reason(tmp_path):
    path, df = _scored(tmp_path)
    res = filter_manifest(
        path, threshold=0.7, output=tmp_path / "clean.parquet", rejected=tmp_path / "rejected.parquet"
    )
    rej = read_manifest(tmp_path / "rejected.parquet").frame
    kept = read_manifest(tmp_path / "clean.parquet").frame
    assert len(rej) + len(kept) == len(df)
    assert (kept["quality"] >= 0.7).all() and (rej["quality"] < 0.7).all()
    assert rej["reason"].notna().all() and kept["reason"].isna().all()
    by_stem = dict(zip(rej["track"] + "/" + rej["stem"], rej["reason"]))
    assert by_stem["t0/bass"] == "looks like drums (p=0.80)"
    assert by_stem["t0/other"] == "drums bleed at -12 dB"
    assert by_stem["t1/drums"] == "label uncertain (p=0.50)"
    assert "vocals bleed at -22 dB" in by_stem["t1/other"]
    assert res.summary.loc["bass", "kept"] == 1


def test_reasons_are_none_for_kept_rows():
    df = pd.DataFrame(
        {
            "stem": ["vocals"],
            "quality": [0.9],
            "label_score": [0.9],
            "predicted_stem": ["vocals"],
            "bleed_db": [-50.0],
            "bleed_stem": [None],
        }
    )
    assert reasons(df, 0.7)["reason"].tolist() == [None]


def test_bad_inputs(tmp_path):
    path, df = _scored(tmp_path)
    with pytest.raises(StemcurateError, match="within 0-1"):
        filter_manifest(path, threshold=1.5)
    unscored = tmp_path / "unscored.parquet"
    write_manifest(df.drop(columns=["quality"]), unscored, root=tmp_path)
    with pytest.raises(StemcurateError, match="no quality scores"):
        filter_manifest(unscored, output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet")
    with pytest.raises(StemcurateError, match="no fragment reaches"):
        filter_manifest(path, threshold=1.0, output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet")
    assert not (tmp_path / "c.parquet").exists()  # nothing half-written
    before = path.read_bytes()
    for clash in (dict(output=path), dict(rejected=path)):  # the manifest itself was overwritten
        with pytest.raises(StemcurateError, match="is the manifest being filtered"):
            filter_manifest(path, **{"output": tmp_path / "c.parquet", "rejected": tmp_path / "r.parquet", **clash})
    assert path.read_bytes() == before
    for floor in (-80.0, -200.0):  # at or below the scan's floor every fragment reads as bleeding
        with pytest.raises(StemcurateError, match="between -80"):
            filter_manifest(path, bleed_db=floor, output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet")


@pytest.mark.parametrize(
    "args, message", [(["--threshold", "-0.1"], "within 0-1"), (["--threshold", "2"], "within 0-1")]
)
def test_cli_bad_threshold(tmp_path, args, message, monkeypatch):
    path, _ = _scored(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["filter", str(path), *args])
    assert (
        r.exit_code == 2
        and r.stderr.startswith("error: ")
        and message in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )


def test_cli_unscored_manifest_and_default_paths(tmp_path, monkeypatch):
    path, df = _scored(tmp_path)
    monkeypatch.chdir(tmp_path)
    write_manifest(df.drop(columns=["quality"]), tmp_path / "m2.parquet", root=tmp_path)
    r = runner.invoke(app, ["filter", "m2.parquet"])
    assert r.exit_code == 2 and "no quality scores" in r.stderr
    r = runner.invoke(app, ["filter", "--threshold", "0.7"])  # manifest.parquet in the current folder
    assert r.exit_code == 0, r.output
    assert (tmp_path / "clean.parquet").exists() and (tmp_path / "rejected.parquet").exists()
    assert "looks like drums" in r.stdout


def test_bleed_bound_moves_the_bleed_cut(tmp_path):
    from curate.scoring.quality import bleed_mid_for

    # at the bound, a certain label sits exactly on the threshold; the default bound is about -22.7 dB
    assert quality(1.0, -15.0, bleed_mid_db=bleed_mid_for(-15.0, 0.7)) == pytest.approx(0.7, abs=1e-6)
    assert bleed_mid_for(-22.7359, 0.7) == pytest.approx(-22.0, abs=1e-3)
    path, df = _scored(tmp_path)  # 'other' of t0 leaks at -12 dB, 'other' of t1 at -22 dB
    out = dict(output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet")
    default = filter_manifest(path, threshold=0.7, **out)
    assert {("t0", "other"), ("t1", "other")} <= set(zip(default.rejected.track, default.rejected.stem))
    loose = filter_manifest(path, threshold=0.7, bleed_db=-18.0, **out)
    kept = set(zip(loose.kept.track, loose.kept.stem))
    assert ("t1", "other") in kept and ("t0", "other") not in kept
    assert "drums bleed at -12 dB" in loose.rejected.set_index(["track", "stem"]).loc[("t0", "other"), "reason"]
    assert read_manifest(tmp_path / "c.parquet").meta["filter"]["bleed_db"] == -18.0
    strict = filter_manifest(path, threshold=0.7, bleed_db=-38.0, **out)  # t1 vocals reads other at -35 dB
    assert set(zip(default.kept.track, default.kept.stem)) - set(zip(strict.kept.track, strict.kept.stem)) == {
        ("t1", "vocals")
    }
    for bad in (float("nan"), 3.0):
        with pytest.raises(StemcurateError, match="--bleed-db"):
            filter_manifest(path, threshold=0.7, bleed_db=bad, **out)
    res = runner.invoke(
        app,
        [
            "filter",
            str(path),
            "--bleed-db",
            "-18",
            "-o",
            str(tmp_path / "c2.parquet"),
            "--rejected",
            str(tmp_path / "r2.parquet"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["filter", str(path), "--bleed-db", "-18", "--threshold", "1.0"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
