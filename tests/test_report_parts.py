"""reports/html.py and reports/plots.py: escaping, inline audio and images that decode."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
from markupsafe import Markup

from reports import html, plots


def test_table_escapes_cells_unless_marked_safe():
    out = html.table(["<a>", "n"], [["<b>x</b>", 3], [Markup("<i>ok</i>"), 4]], numeric={1})
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<i>ok</i>" in out and "&lt;a&gt;" in out
    assert out.count("<td class=num>") == 2
    assert "&lt;script&gt;" in html.cards([("k", "<script>")])


def test_audio_clip_is_an_inline_mp3_at_most_22_khz_of_the_clip_length():
    x = (np.random.default_rng(0).standard_normal((2, 44100)) * 3).astype(np.float32)  # loud noise
    tag = str(html.audio_clip(x, 44100))
    data = base64.b64decode(tag.split("base64,", 1)[1].split('"', 1)[0])
    y, sr = sf.read(io.BytesIO(data))
    assert sr == 22050 and abs(len(y) / sr - 1.0) < 0.1 and np.abs(y).max() <= 1.0


def test_fmt_time_and_page_kind():
    assert html.fmt_time(44100 * 61 + 22050, 44100) == "1:01.5"
    page = html.page("T", "sub", "<p>body</p>", kind="run report")
    assert '<meta name="generator" content="stemcurate run report">' in page and "<p>body</p>" in page


def test_plots_render_pngs_also_for_degenerate_input():
    uris = [
        plots.spectrogram(np.zeros(22050, np.float32), 22050),
        plots.histograms({"vocals": np.array([0.1, 0.5, 0.9]), "bass": np.array([])}, xlabel="q", marker=0.7),
        plots.confusion(["vocals", "bass"], ["vocals", "vocals"], ["bass", "vocals"]),
        plots.roc_pr(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.6, 0.3])),
        plots.curves({"loss": (np.arange(5), np.ones(5))}, xlabel="step", ylabel="loss"),
        plots.boxes({"vocals": np.array([1.0, np.nan, 3.0])}, ylabel="dB"),
    ]
    for uri in uris:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
