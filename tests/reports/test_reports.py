"""Both HTML reports, rendered from small generated inputs and opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app as curate_app
from curate.data.schema import write_corruptions, write_manifest
from pipelines.cli import app as pipelines_app
from tests.conftest import noise_stems, tiny_train, write_track

runner = CliRunner()
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
]
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-decoded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  document.body.setAttribute('data-audio', document.querySelectorAll('audio').length);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is required (apt-get install -y chromium; .ci/run installs it)")
    pytest.skip("chromium not installed")


def _open(page, tmp_path, headings: list[str], *, min_images: int, min_audio: int) -> None:
    """Load ``page`` in Chromium: expected headings, every image decoded, audio players, a non-blank screenshot."""
    exe = _chromium()
    html = page.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # no JavaScript, no network
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [exe, *FLAGS, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for h in headings:
        assert re.search(rf"<h[12][^>]*>{re.escape(h)}</h[12]>", dom), h
    body = re.search(r"<body([^>]*)>", dom).group(1)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    decoded = int(re.search(r'data-decoded="(\d+)"', body).group(1))
    audio = int(re.search(r'data-audio="(\d+)"', body).group(1))
    assert images >= min_images and decoded == images, (images, decoded)
    assert audio >= min_audio
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [exe, *FLAGS, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 200).mean() > 0.02  # not blank: text, tables and plots


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A 3-track dataset, a hand-scored manifest (some fragments bad) and its ground truth."""
    root = tmp_path_factory.mktemp("rep")
    rng = np.random.default_rng(0)
    rows = []
    for t in range(3):
        name = f"track{t}"
        write_track(root / "train" / name, noise_stems(rng, seconds=6.0))
        for s, stem in enumerate(["vocals", "bass", "drums", "other"]):
            for k, (a, b) in enumerate([(0, 3), (3, 6)]):
                bad = (t + s + k) % 4 == 0
                rows.append(
                    dict(
                        track=name,
                        subset="train",
                        stem=stem,
                        path=f"train/{name}/{stem}.wav",
                        start=a * 44100,
                        end=b * 44100,
                        sample_rate=44100,
                        channels=2,
                        rms_db=-26.0,
                        quality=0.1 if bad else 0.95,
                        label_score=0.1 if bad and s % 2 else 0.97,
                        predicted_stem="other" if bad and s % 2 else stem,
                        bleed_db=-12.0 if bad and not s % 2 else -45.0,
                        bleed_stem="bass",
                        reason=None,
                    )
                )
    manifest = root / "manifest.parquet"
    write_manifest(
        pd.DataFrame(rows),
        manifest,
        root=root,
        meta={"label_model": {"reference_units": 480, "dataset_share": 0.25, "noise_rate": 0.31}},
    )
    write_corruptions(
        pd.DataFrame(
            [
                dict(
                    track="track0",
                    subset="train",
                    stem="vocals",
                    kind="bleed",
                    start=0,
                    end=6 * 44100,
                    source_track="track0",
                    source_stem="bass",
                    leak_db=-10.0,
                    delay_ms=1.0,
                    filter="none",
                ),
                dict(
                    track="track1",
                    subset="train",
                    stem="drums",
                    kind="swap",
                    start=0,
                    end=6 * 44100,
                    source_track="track1",
                    source_stem="other",
                ),
            ]
        ),
        root / "corruptions.parquet",
    )
    return root


def test_curation_report_in_a_browser(scored, tmp_path):
    out = tmp_path / "curation_report.html"
    res = runner.invoke(curate_app, ["report", str(scored / "manifest.parquet"), "-o", str(out), "--per-stem", "3"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    _open(
        out,
        tmp_path,
        [
            "Curation report",
            "Kept and rejected per stem",
            "Quality",
            "Bleed",
            "Label vs predicted content",
            "Against the ground truth",
            "Lowest-quality fragments",
        ],
        min_images=4 + 12,
        min_audio=12,
    )  # 4 plots + a spectrogram per listed fragment


def test_curation_report_says_what_the_label_model_learned_from(scored, tmp_path):
    from reports.curation import curation_report

    page = curation_report(scored / "manifest.parquet", tmp_path / "r.html", per_stem=1).read_text()
    assert "25 % of the label model&#39;s training came from this dataset" in page
    assert "reference pool (480 clean units" in page and "31 % of the stems" in page
    assert "rest mostly on the pretrained embedding" in page  # under half its own data


def test_curation_report_bad_input(scored, tmp_path):
    res = runner.invoke(curate_app, ["report", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "manifest not found" in res.output
    res = runner.invoke(
        curate_app, ["report", str(scored / "manifest.parquet"), "-o", str(tmp_path / "r.html"), "-t", "2"]
    )
    assert res.exit_code == 2 and "threshold" in res.output and not (tmp_path / "r.html").exists()


def test_run_report_in_a_browser(synth_dir, tmp_path):
    from curate.scan import scan

    scan(synth_dir, output=tmp_path / "m.parquet", score=None)
    run = tmp_path / "run"
    valid = sorted(p.name for p in (synth_dir / "train").iterdir())[0]
    extra = ["--set", "val_every=3", "--valid-tracks", valid, "--truncate", "--truncate-warmup", "2"]
    args = tiny_train(tmp_path / "m.parquet", *extra, steps=6, valid=True, out=run, export_dir=tmp_path / "sm")
    assert runner.invoke(pipelines_app, args).exit_code == 0
    assert runner.invoke(pipelines_app, ["evaluate", str(run), "--data", str(synth_dir)]).exit_code == 0
    res = runner.invoke(pipelines_app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    _open(
        run / "run_report.html",
        tmp_path,
        ["Training run: vocals", "Loss", "Validation", "Loss truncation", "Evaluation", "Hyperparameters"],
        min_images=4,
        min_audio=0,
    )
    res = runner.invoke(pipelines_app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a training run folder" in res.output
