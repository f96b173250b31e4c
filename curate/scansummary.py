"""What ``curate scan`` prints when it is done (stems, problems, warnings, label model, quality, cache), and
its ``--shard`` option."""

from __future__ import annotations

import re

from rich.table import Table

from curate.common.cliutil import err_console, out_console
from curate.common.errors import StemcurateError
from curate.data import decoded
from curate.data.datasets import is_stem_mp4
from curate.scan import ShardScan


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` -> ``(I, N)``; :class:`StemcurateError` unless ``0 <= I < N``."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text, re.ASCII)
    if match is None or int(match[1]) >= int(match[2]):
        raise StemcurateError(f"--shard {text}: give I/N with 0 <= I < N (shard I of N, counted from 0)")
    return int(match[1]), int(match[2])


def print_scan_summary(result) -> None:
    """Print a :class:`curate.scan.ScanResult` (or a shard's :class:`curate.scan.ShardScan`) for a person:
    tables to stdout, warnings to stderr."""
    if isinstance(result, ShardScan):
        i, n = result.shard
        out_console.print(
            f"shard {i}/{n}: {result.tracks} of {result.total} tracks scanned into {result.parts}"
            + (f" ({result.resumed} already there)" if result.resumed else "")
            + ("; no track falls in this shard" if not result.tracks else "")
            + "; when every shard is done, run the same command without --shard to merge them"
            + " (--txt-dir and --strict act there)"
        )
        return
    frag = result.fragments
    if result.layout_reason:
        out_console.print(f"layout: {result.layout} ({result.layout_reason})")
    table = Table(title=f"{result.tracks} tracks scanned" + (f" ({result.resumed} resumed)" if result.resumed else ""))
    table.add_column("stem")
    table.add_column("fragments", justify="right")
    table.add_column("tracks", justify="right")
    table.add_column("hours", justify="right")
    for stem in result.stems:
        g = frag[frag["stem"] == stem]
        hours = float(((g["end"] - g["start"]) / g["sample_rate"]).sum()) / 3600
        table.add_row(str(stem), str(len(g)), str(g["track"].nunique()), f"{hours:.2f}")
    out_console.print(table)
    if len(result.problems):
        pt = Table(title=f"{len(result.problems)} problem(s)")
        for col in ("track", "stem", "check", "severity", "detail"):
            pt.add_column(col)
        for p in result.problems.head(30).itertuples():
            pt.add_row(
                str(p.track), p.stem if isinstance(p.stem, str) and p.stem else "-", p.check, p.severity, p.detail
            )
        out_console.print(pt)
        if len(result.problems) > 30:
            out_console.print(f"... {len(result.problems) - 30} more")
    for w in result.warnings:
        err_console.print(f"warning: {w}")
    if result.labels is not None:
        lab = result.labels
        out_console.print(
            f"label model: estimated noise rate {lab.eps:.0%} (share of stems whose content is not their label); "
            f"{lab.dataset_share:.0%} of its training from this dataset"
            + (f", {lab.reference_units} reference units" if lab.reference_units else "")
        )
    if frag["quality"].notna().any():
        q = frag["quality"].astype(float)
        out_console.print(f"quality: median {q.median():.2f}, {int((q < 0.7).sum())} of {len(q)} fragments below 0.7")
    if frag["path"].astype(str).map(is_stem_mp4).any():
        root, entries, size = decoded.usage()
        out_console.print(
            f"decoded .stem.mp4 files: {root} ({entries} files, {size / 1e9:.2f} GB; about 0.1 GB per minute of song; "
            f"{decoded.CACHE_ENV}=DIR moves it, ={decoded.OFF} decodes on every read)"
            if root is not None
            else f"decoded .stem.mp4 files: not cached ({decoded.CACHE_ENV}={decoded.OFF})"
        )
    out_console.print(f"manifest: {result.manifest}  ({len(frag)} fragments)")
    out_console.print(f"problems: {result.problems_file}  ({len(result.problems)} rows)")
