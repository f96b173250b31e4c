"""``curate export``'s command line: a thin layer over :func:`curate.export.export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.common.cliutil import ShowProgress, err_console, guarded, out_console, progress_bar


@guarded(interrupted="finished tracks are kept; run the same command again to resume")
def export_cmd(
    manifest: Annotated[Path, typer.Argument(help="Scored manifest (curate scan) or kept one (curate filter).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (new, empty, or an earlier export).")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="musdb-hq (MSST types 1/4/6, demucs, open-unmix), msst-csv, txt, relabel."),
    ] = "musdb-hq",
    threshold: Annotated[
        Optional[float],
        typer.Option("--threshold", "-t", help="Kept: quality at least this (default 0.7; a kept manifest: filter's)."),
    ] = None,
    drop_tracks: Annotated[
        bool, typer.Option("--drop-tracks", help="musdb-hq: only the tracks with no rejected fragment, unchanged.")
    ] = False,
    min_kept: Annotated[
        float, typer.Option("--min-kept", help="msst-csv: share of a stem file's fragments that must be kept.")
    ] = 0.9,
    valid: Annotated[
        Optional[Path], typer.Option("--valid", help="Manifest whose tracks make the validation split (valid/).")
    ] = None,
    test: Annotated[Optional[Path], typer.Option("--test", help="Manifest whose tracks make the test split.")] = None,
    valid_tracks: Annotated[
        Optional[str],
        typer.Option(
            "--valid-tracks",
            help="Training tracks moved to valid/: a count N (drawn with --seed) or names separated by '|' "
            "(default: MUSDB18's validation tracks when they are there; 0: none).",
        ),
    ] = None,
    valid_layout: Annotated[
        str,
        typer.Option(
            "--valid-layout",
            help="folder: a valid/ folder (MSST, demucs wav, open-unmix aligned); musdb: validation tracks stay in "
            "train/ under MUSDB18's names (musdb split='valid', open-unmix musdb).",
        ),
    ] = "folder",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --valid-tracks N draw.")] = 0,
    two_stems: Annotated[
        Optional[str], typer.Option("--two-stems", help="Write only this stem and 'other', the sum of the rest.")
    ] = None,
    mixture: Annotated[
        bool, typer.Option("--mixture/--no-mixture", help="Write mixture.<ext> in each track folder.")
    ] = True,
    audio_format: Annotated[str, typer.Option("--audio-format", help="wav or flac.")] = "wav",
    bits: Annotated[
        str, typer.Option("--bits", help="16, 24, float (WAV only) or source (each track's deepest file).")
    ] = "source",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in OUT.")] = False,
    progress: ShowProgress = True,
):
    """Write the kept fragments for another trainer: MUSDB18-HQ folders with rejected regions silenced
    (train/, valid/, test/), an MSST CSV of clean stem files, the seed's txt lists, or a copy with swapped
    files under their true names (relabel). OUT/export.json says what was done and which track went where."""
    from curate.export import ExportConfig, export

    cfg = ExportConfig(
        format=fmt,
        threshold=threshold,
        drop_tracks=drop_tracks,
        min_kept=min_kept,
        two_stems=two_stems,
        mixture=mixture,
        audio_format=audio_format,
        bits=bits,
        valid_tracks=valid_tracks,
        valid_layout=valid_layout,
        seed=seed,
    )
    with progress_bar(progress) as bar:
        task = bar.add_task("export", total=None, item="")
        res = export(
            manifest,
            out,
            valid=valid,
            test=test,
            config=cfg,
            overwrite=overwrite,
            progress=lambda n, total: bar.update(task, advance=1, item=n, total=total),
            on_warning=lambda text: err_console.print(f"warning: {text}", highlight=False),
        )
    for track, why in res.skipped:
        err_console.print(f"left out: {track} ({why})")
    n = len(res.written)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in res.splits.items())
    out_console.print(
        f"wrote {n} {'track folder' if fmt in ('musdb-hq', 'relabel') else 'file'}{'' if n == 1 else 's'} to {res.out}"
        + (f", {len(res.relabelled)} file(s) under their true names" if fmt == "relabel" else "")
        + (f" ({len(res.resumed)} kept from an earlier run)" if res.resumed else "")
        + f"; tracks per split: {sizes or 'none'}; record: {res.record}"
    )
