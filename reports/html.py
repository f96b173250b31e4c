"""Rendering the reports: one self-contained HTML file (inline CSS, images and audio; no script,
no network), from a small Jinja2 base template and sections built in Python."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import soundfile as sf
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from curate.common.atomic import write_text

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


def page(title: str, subtitle: str, body: str, *, kind: str) -> str:
    """The whole page around ``body`` (already-safe HTML); ``kind`` (``curation report``, ``run report``)
    goes in its generator tag, which :func:`curate.common.outputs.file_kind` reads back."""
    return _ENV.get_template("base.html").render(title=title, subtitle=subtitle, body=Markup(body), kind=kind)


def write_page(path: str | Path, html: str) -> Path:
    """Write the page atomically."""
    return write_text(path, html)


def table(header: list[str], rows: list[list], *, numeric: set[int] | None = None) -> str:
    """An HTML table; cells are escaped unless they are :class:`Markup`."""
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if i in numeric else ''}>{c if isinstance(c, Markup) else escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def img(uri: str, alt: str, cls: str = "plot") -> Markup:
    return Markup(f'<img class="{cls}" src="{uri}" alt="{escape(alt)}">')


def cards(items: list[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in items)
        + "</div>"
    )


HEADROOM = 0.7
"""Peak of an inline clip before MP3 encoding: the codec's overshoot (up to about 3 dB on dense
material) stays below full scale."""


def audio_clip(audio: np.ndarray, sample_rate: int, *, max_rate: int = 22050) -> Markup:
    """An inline MP3 ``<audio>`` player for mono or ``(channels, samples)`` audio (down-mixed, resampled)."""
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if sample_rate > max_rate:
        x = soxr.resample(x, sample_rate, max_rate)
        sample_rate = max_rate
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > HEADROOM:
        x = x * (HEADROOM / peak)
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format="MP3")
    uri = "data:audio/mpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Markup(f'<audio controls preload="none" src="{uri}"></audio>')


def fmt_time(samples: int, sample_rate: int) -> str:
    s = samples / sample_rate
    return f"{int(s // 60)}:{s % 60:04.1f}"
