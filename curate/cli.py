"""``curate``: the command line of the curation side. A thin layer over the library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from curate.common.cliutil import (
    ShowProgress,
    err_console,
    guarded,
    invoke,
    make_app,
    out_console,
    parse_list,
    progress_bar,
)
from curate.common.errors import MAX_SEED, StemcurateError
from curate.data.checks import CheckConfig
from curate.data.layouts import LAYOUTS
from curate.data.schema import CORRUPTIONS_FILE, REPAIRS_FILE
from curate.exportcli import export_cmd
from curate.filter import filter_manifest
from curate.repair import RepairConfig, repair_dataset
from curate.scan import ShardScan, scan
from curate.scansummary import parse_shard, print_scan_summary
from curate.scantrack import ScoreConfig
from curate.scoring.embed import DEFAULT_EMBEDDER, EMBEDDERS
from curate.scoring.labelmodel import LabelModelConfig
from curate.simulate.corrupt import KINDS as CORRUPTION_KINDS
from curate.simulate.corrupt import corrupt_dataset
from curate.simulate.synth import synth_dataset
from sad import SADConfig

app = make_app("curate", "Find mislabeled and bleeding stems in music source-separation datasets.")


@app.command()
@guarded
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the dataset to (MUSDB18-HQ layout).")],
    tracks: Annotated[int, typer.Option("--tracks", "-n", min=1, help="Train tracks.")] = 12,
    test_tracks: Annotated[int, typer.Option("--test-tracks", min=0, help="Test tracks.")] = 0,
    seconds: Annotated[
        float, typer.Option("--seconds", "-s", min=1.0, max=3600.0, help="Length of each track in seconds (1 to 3600).")
    ] = 10.0,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed; same seed, same files.")] = 0,
    progress: ShowProgress = True,
):
    """Write a synthetic demo dataset whose stems sound like vocals, bass, drums and other."""
    with progress_bar(progress) as bar:
        task = bar.add_task("synth", total=tracks + test_tracks, item="")
        synth_dataset(
            out_dir,
            tracks=tracks,
            test_tracks=test_tracks,
            seconds=seconds,
            seed=seed,
            progress=lambda name: bar.update(task, advance=1, item=name),
        )
    out_console.print(f"wrote {tracks} train + {test_tracks} test tracks to {out_dir}")


@app.command(name="scan")
@guarded
def scan_cmd(
    data_dir: Annotated[
        Optional[Path], typer.Argument(help="Dataset root or MSST CSV list (default: $MUSDB_DIR).", show_default=False)
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest to write.")] = Path("manifest.parquet"),
    subset: Annotated[str, typer.Option("--subset", help="train or test.")] = "train",
    layout: Annotated[
        Optional[str], typer.Option("--layout", help=f"One of {', '.join(LAYOUTS)}; default: detected.")
    ] = None,
    stems: Annotated[
        Optional[str], typer.Option("--stems", help="Comma-separated stems (default vocals,bass,drums,other).")
    ] = None,
    txt_dir: Annotated[
        Optional[Path], typer.Option("--txt-dir", help="Also write seed-compatible {stem}_{subset}.txt files here.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with code 2 when any problem is found.")] = False,
    sad_window: Annotated[float, typer.Option("--sad-window", help="SAD window, seconds.")] = 6.0,
    sad_hop: Annotated[float, typer.Option("--sad-hop", help="SAD hop, seconds.")] = 3.0,
    sad_chunks: Annotated[int, typer.Option("--sad-chunks", help="Sub-chunks per window.")] = 10,
    sad_quantile: Annotated[
        float, typer.Option("--sad-quantile", help="Quantile of sub-chunk RMS for the threshold.")
    ] = 0.15,
    sad_gamma: Annotated[float, typer.Option("--sad-gamma", help="Lowest RMS threshold.")] = 1e-3,
    sad_min_active: Annotated[
        float,
        typer.Option("--sad-min-active", help="Keep a window when more than this fraction of sub-chunks is active."),
    ] = 0.5,
    silence_db: Annotated[
        float, typer.Option("--silence-db", help="Stems with peak below this (dBFS) are silent.")
    ] = -70.0,
    max_residual_db: Annotated[
        float,
        typer.Option("--max-residual-db", help="Report mixtures that differ from the stem sum by more than this (dB)."),
    ] = -20.0,
    embedder: Annotated[
        str,
        typer.Option(
            "--embedder",
            help="musicnn (shipped pretrained tagger), features (descriptors), features+musicnn, or panns.",
        ),
    ] = DEFAULT_EMBEDDER,
    panns_checkpoint: Annotated[
        Optional[Path], typer.Option("--panns-checkpoint", help="Cnn14_mAP=0.431.pth for --embedder panns.")
    ] = None,
    musicnn_weights: Annotated[
        Optional[Path],
        typer.Option("--musicnn-weights", help="Another MTT_musicnn safetensors file than the shipped one."),
    ] = None,
    reference: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--reference",
            help="Folder of trusted clean stems (any layout scan reads) that teaches the label model; repeatable.",
        ),
    ] = None,
    no_reference_pool: Annotated[
        bool, typer.Option("--no-reference-pool", help="Leave out the shipped curate-synth reference pool.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="Torch device for model embedders (cpu, cuda).")] = "cpu",
    no_score: Annotated[
        bool, typer.Option("--no-score", help="Only checks and SAD: leave the score columns empty.")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tracks processed in parallel.")] = 1,
    separator: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--separator",
            help="Trained BSRNN models (exported .ckpt, Lightning checkpoint, run folder or saved_models folder; "
            "repeatable): add self-separation evidence (second curation round).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the label model.")] = 0,
    shard: Annotated[
        Optional[str], typer.Option("--shard", help="I/N: only the tracks of shard I (0..N-1); merge without it.")
    ] = None,
    progress: ShowProgress = True,
):
    """Check every file and index the salient fragments of every stem into a Parquet manifest."""
    try:
        sad_config = SADConfig(sad_window, sad_hop, sad_chunks, 1e-5, sad_gamma, sad_quantile, sad_min_active)
    except ValueError as exc:
        raise StemcurateError(f"SAD options: {exc}") from None
    if embedder not in EMBEDDERS:
        raise StemcurateError(f"--embedder: unknown embedder '{embedder}' (use {', '.join(EMBEDDERS)})")
    for folder in reference or ():
        if not folder.is_dir():
            raise StemcurateError(f"{folder}: --reference folder not found")
    if embedder == "panns" and not no_score:
        if panns_checkpoint is None:
            raise StemcurateError("--embedder panns needs --panns-checkpoint PATH (Cnn14_mAP=0.431.pth)")
        if not panns_checkpoint.is_file():
            raise StemcurateError(f"{panns_checkpoint}: PANNs checkpoint not found")
    if separator and not no_score:
        from curate.scoring.selfsep import load_separator

        load_separator(separator, device=device)  # fail before scanning when a checkpoint is bad
    score = (
        None
        if no_score
        else ScoreConfig(
            embedder=embedder,
            panns_checkpoint=panns_checkpoint,
            musicnn_weights=musicnn_weights,
            device=device,
            labels=LabelModelConfig(seed=seed),
            separator=tuple(separator) if separator else None,
            reference_pool=not no_reference_pool,
            reference=tuple(reference) if reference else None,
        )
    )
    with progress_bar(progress) as bar:  # appears once the data folder is known to be good (on_start)
        task = bar.add_task("scan", total=None, item="", start=False)

        def on_start(n: int) -> None:
            bar.start_task(task)
            bar.update(task, total=n)

        result = scan(
            data_dir,
            output=output,
            subset=subset,
            layout=layout,
            stems=parse_list(stems, "--stems"),
            sad_config=sad_config,
            check_config=CheckConfig(silence_db=silence_db, max_residual_db=max_residual_db),
            txt_dir=txt_dir,
            score=score,
            jobs=jobs,
            on_start=on_start,
            on_track=lambda t: bar.update(task, advance=1, item=t.name),
            shard=parse_shard(shard),
        )
    print_scan_summary(result)
    if strict and not isinstance(result, ShardScan) and len(result.problems):  # a shard's are the merge's
        err_console.print(
            f"error: {len(result.problems)} problem(s) found and --strict is set; see {result.problems_file}"
        )
        raise typer.Exit(2)


@app.command(name="filter")
@guarded
def filter_cmd(
    manifest: Annotated[Path, typer.Argument(help="Scored manifest from curate scan.")] = Path("manifest.parquet"),
    threshold: Annotated[
        float, typer.Option("--threshold", "-t", help="Keep fragments with quality >= this (0-1).")
    ] = 0.7,
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest of kept fragments.")] = Path("clean.parquet"),
    rejected: Annotated[Path, typer.Option("--rejected", help="Manifest of rejected fragments, with reasons.")] = Path(
        "rejected.parquet"
    ),
    bleed_db: Annotated[
        Optional[float],
        typer.Option(
            "--bleed-db",
            help="Bleed bound, dB re the fragment: keep fragments with a certain label up to this much bleed "
            "(default about -22.7 at threshold 0.7).",
        ),
    ] = None,
    keep_separated: Annotated[
        bool,
        typer.Option(
            "--keep-separated",
            help="Judge stems made by a separator like recorded ones (training on pseudo-labels on purpose).",
        ),
    ] = False,
):
    """Split a scanned manifest into clean and rejected fragments, each rejection with a reason."""
    res = filter_manifest(
        manifest,
        threshold=threshold,
        output=output,
        rejected=rejected,
        bleed_db=bleed_db,
        keep_separated=keep_separated,
    )
    table = Table(title=f"quality >= {threshold}: kept {len(res.kept)}, rejected {len(res.rejected)}")
    table.add_column("stem")
    for col in res.summary.columns:
        table.add_column(str(col), justify="right")
    for stem, row in res.summary.iterrows():
        table.add_row(str(stem), *[str(v) for v in row])
    out_console.print(table)
    for r in res.rejected.head(10).itertuples():
        out_console.print(
            f"  {r.track} / {r.stem} [{r.start / r.sample_rate:.0f}-{r.end / r.sample_rate:.0f} s]: {r.reason}"
        )
    if len(res.rejected) > 10:
        out_console.print(f"  ... {len(res.rejected) - 10} more in {res.rejected_path}")
    if res.unmatched is not None and len(res.unmatched):
        first = res.unmatched.iloc[0]
        err_console.print(
            f"warning: {len(res.unmatched)} review decision(s) name no fragment of the manifest (the first: "
            f"{first['track']}/{first['stem']}); they are left as they are",
            highlight=False,
        )
    out_console.print(f"clean: {res.output}\nrejected: {res.rejected_path}")


@app.command()
@guarded(interrupted="nothing was written (the partial copy is removed); run the command again")
def corrupt(
    src: Annotated[Path, typer.Argument(help="Clean dataset (MUSDB18-HQ layout).")],
    dst: Annotated[Path, typer.Argument(help="Folder for the noisy copy (must not exist or be empty).")],
    mislabel_rate: Annotated[
        float,
        typer.Option(
            "--mislabel-rate",
            help="Probability per stem of a swap, a replacement, a partial replacement or a separator's estimate.",
        ),
    ] = 0.2,
    bleed_rate: Annotated[
        float, typer.Option("--bleed-rate", help="Probability per stem of leaks from other stems.")
    ] = 0.2,
    subset: Annotated[str, typer.Option("--subset", help="Subset to corrupt; the others are copied.")] = "train",
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed.")] = 0,
    kinds: Annotated[
        str,
        typer.Option(
            "--kinds", help=f"Comma-separated kinds to draw from: {','.join(CORRUPTION_KINDS)} (default all)."
        ),
    ] = ",".join(CORRUPTION_KINDS),
    progress: ShowProgress = True,
):
    """Write a label-noise copy of a dataset and its ground truth (DST/corruptions.parquet)."""
    with progress_bar(progress) as bar:
        task = bar.add_task("corrupt", total=None, item="")
        truth = corrupt_dataset(
            src,
            dst,
            mislabel_rate=mislabel_rate,
            bleed_rate=bleed_rate,
            seed=seed,
            subset=subset,
            kinds=parse_list(kinds, "--kinds"),
            progress=lambda name: bar.update(task, advance=1, item=name),
        )
    counts = truth["kind"].value_counts().to_dict() if len(truth) else {}
    out_console.print(f"wrote {dst}; corruptions: {counts or 'none'}; truth: {dst / CORRUPTIONS_FILE}")


@app.command()
@guarded(interrupted="nothing was written (the partial copy is removed); run the command again")
def repair(
    manifest: Annotated[Path, typer.Argument(help="Scored manifest from curate scan.")],
    dst: Annotated[Path, typer.Argument(help="Folder for the repaired copy (must not exist or be empty).")],
    leak_min_db: Annotated[
        float, typer.Option("--leak-min-db", help="Subtract leaks from this level up (dB re the stem).")
    ] = RepairConfig.leak_min_db,
    no_relabel: Annotated[bool, typer.Option("--no-relabel", help="Do not trade the labels of swapped files.")] = False,
    progress: ShowProgress = True,
):
    """Write a copy of the dataset with swapped files relabelled and leaks subtracted (DST/repairs.parquet);
    rescan and filter it: what cannot be mended is still rejected there."""
    from curate.data.schema import read_manifest
    from curate.decisions import read_decisions

    cfg = RepairConfig(leak_min_db=leak_min_db, relabel=not no_relabel)
    m = read_manifest(manifest)
    with progress_bar(progress) as bar:
        task = bar.add_task("repair", total=int(m.frame["track"].nunique()), item="")
        table = repair_dataset(
            m,
            dst,
            config=cfg,
            decisions=read_decisions(manifest),
            progress=lambda name: bar.update(task, advance=1, item=name),
        )
    counts = table["action"].value_counts().to_dict() if len(table) else {}
    for r in table[table["action"] == "not repaired"].itertuples():
        err_console.print(f"not repaired (copied as it is): {r.detail}")
    out_console.print(f"wrote {dst}; actions: {counts or 'none'}; log: {dst / REPAIRS_FILE}")
    out_console.print(f"next: curate scan {dst} -o repaired.parquet && curate filter repaired.parquet")


app.command(name="export")(export_cmd)


@app.command(name="report")
@guarded
def report_cmd(
    manifest: Annotated[Path, typer.Argument(help="Scored manifest.")] = Path("manifest.parquet"),
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("curation_report.html"),
    data: Annotated[Optional[Path], typer.Option("--data", help="Data root (default: the manifest's).")] = None,
    threshold: Annotated[float, typer.Option("--threshold", "-t", help="Quality threshold to mark (0-1).")] = 0.7,
    per_stem: Annotated[int, typer.Option("--per-stem", min=1, help="Lowest-quality fragments listed per stem.")] = 20,
):
    """Write a self-contained HTML report of what curation kept, rejected and why, with audio."""
    from reports.curation import curation_report

    path = curation_report(
        manifest,
        output,
        threshold=threshold,
        data_root=data,
        per_stem=per_stem,
        on_warning=lambda text: err_console.print(f"warning: {text}", highlight=False),
    )
    out_console.print(f"curation report: {path}")


def main() -> None:
    """Console-script entry point."""
    invoke(app)


if __name__ == "__main__":
    main()
