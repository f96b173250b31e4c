"""The list formats of ``curate export``: MSST's CSV (dataset type 3) and the seed's txt fragment lists."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from curate.common.atomic import make_dir, write_text
from curate.common.errors import StemcurateError
from curate.data.schema import row_parts


def check_txt_names(names, where, *, lists: str = "the txt lists") -> None:
    """:class:`StemcurateError` naming ``where`` and the first track name with a tab or line break, which
    the txt lists (one fragment per line, tab-separated) cannot hold."""
    bad = next((n for n in names if any(c in str(n) for c in "\t\r\n")), None)
    if bad is not None:
        raise StemcurateError(
            f"{where}: track {bad!r} has a tab or line break in its name, which {lists} cannot hold "
            "(one fragment per line, tab-separated); rename it"
        )


def write_txt_lists(frame: pd.DataFrame, txt_dir: Path, subset: str, stems: list[str]) -> list[Path]:
    """Seed-compatible ``{stem}_{subset}.txt`` files: ``{track}\\t{start}\\t{end}`` per fragment."""
    out = []
    make_dir(txt_dir)
    for stem in stems:
        path = Path(txt_dir) / f"{stem}_{subset}.txt"
        sel = frame[frame["stem"] == stem]
        write_text(path, "".join(f"{r.track}\t{r.start}\t{r.end}\n" for r in sel.itertuples()))
        out.append(path)
    return out


def csv_rows(root: Path, every: pd.DataFrame, kept: pd.DataFrame, split: str, min_kept: float) -> list[str]:
    """MSST type-3 rows (``instrum,path``) of the stem files of ``split`` whose kept share of fragment
    time is ``min_kept`` or more; :class:`StemcurateError` for a path with a line break."""
    frame = every[every["split"] == split]
    dur = (frame["end"] - frame["start"]).groupby([frame["stem"], frame["path"]]).sum()
    k = kept[kept["split"] == split]
    kept_dur = (k["end"] - k["start"]).groupby([k["stem"], k["path"]]).sum().reindex(dur.index, fill_value=0)
    share = kept_dur / dur
    parts = {}  # a summed stem: each of its files under the stem's name
    if "parts" in frame.columns:
        parts = {p: q for p, q in zip(frame["path"], frame["parts"].map(row_parts)) if q is not None}
    rows = sorted(
        (str(stem), str((Path(root) / f).resolve()))
        for (stem, rel), s in share.items()
        if s >= min_kept
        for f in parts.get(rel, [rel])
    )
    for _, path in rows:
        if "\n" in path or "\r" in path:
            raise StemcurateError(f"{path!r}: a path with a line break cannot go in a CSV list")
    return rows


def csv_text(rows: list[tuple[str, str]]) -> str:
    """An ``instrum,path`` CSV (RFC 4180 quoting: a path with a comma is quoted, as pandas reads it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["instrum", "path"])
    writer.writerows(rows)
    return buf.getvalue()
