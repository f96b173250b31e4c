"""reports/html.py: escaping, inline audio clips, pages."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
from markupsafe import Markup

from reports import html


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
