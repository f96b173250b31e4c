"""``pipelines``: the command line of the training side. A thin layer over the library functions."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.common.cliutil import ShowProgress, guarded, invoke, make_app, out_console, parse_list
from curate.common.errors import MAX_SEED, StemcurateError

app = make_app("pipelines", "Train, evaluate and run Band-Split RNN separators on curated manifests.")


@app.callback()
def _root() -> None:
    """Train, evaluate and run Band-Split RNN separators on curated manifests."""


@app.command()
@guarded
def env() -> None:
    """Print the versions and the accelerators that training and separation would use."""
    import lightning
    import torch

    out_console.print(f"python     {platform.python_version()}")
    out_console.print(f"torch      {torch.__version__}")
    out_console.print(f"lightning  {lightning.__version__}")
    cuda = torch.cuda.is_available()
    out_console.print(
        f"cuda       "
        f"{'yes, ' + str(torch.cuda.device_count()) + ' device(s): ' + torch.cuda.get_device_name(0) if cuda else 'no'}"
    )
    out_console.print(f"cpu        {torch.get_num_threads()} threads")


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@app.command(name="train")
@guarded
def train_cmd(
    manifest: Annotated[
        Optional[Path],
        typer.Option("--manifest", "-m", help="Manifest of the fragments to train on (default clean.parquet)."),
    ] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Stem to separate (default vocals).")] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help="auto (default: paper on a GPU, the CPU size on a CPU), paper, medium, small, tiny or a YAML file "
            "of model hyperparameters.",
        ),
    ] = None,
    sets: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="key=value override of a model or training setting (repeatable)."),
    ] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Training steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Examples per step.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/<target>).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    init_from: Annotated[
        Optional[Path],
        typer.Option(
            "--init-from",
            help="Start from this trained model's weights (exported .ckpt, Lightning checkpoint, run folder or "
            "saved_models folder).",
        ),
    ] = None,
    weighting: Annotated[
        Optional[str], typer.Option("--weighting", help="Per-example loss weights: none, quality or binary.")
    ] = None,
    truncate: Annotated[Optional[bool], typer.Option("--truncate/--no-truncate", help="Loss truncation.")] = None,
    truncate_quantile: Annotated[
        Optional[float], typer.Option("--truncate-quantile", help="Drop examples above the 1-c loss quantile.")
    ] = None,
    truncate_mode: Annotated[Optional[str], typer.Option("--truncate-mode", help="history or batch.")] = None,
    truncate_warmup: Annotated[
        Optional[int], typer.Option("--truncate-warmup", min=0, help="Steps before truncation starts.")
    ] = None,
    valid_tracks: Annotated[
        Optional[str], typer.Option("--valid-tracks", help="Comma-separated tracks held back for validation.")
    ] = None,
    valid_fraction: Annotated[
        Optional[float],
        typer.Option("--valid-fraction", help="Fraction of tracks held back when --valid-tracks is not given."),
    ] = None,
    num_workers: Annotated[
        Optional[int], typer.Option("--num-workers", min=0, help="Data loader worker processes.")
    ] = None,
    export_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--export-dir", help="Where the best model is exported as <target>/<target>.ckpt (default saved_models)."
        ),
    ] = None,
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto, cpu, gpu, ...")] = "auto",
    devices: Annotated[str, typer.Option("--devices", help="Number of devices or auto.")] = "auto",
    strategy: Annotated[str, typer.Option("--strategy", help="auto, ddp, ...")] = "auto",
    num_nodes: Annotated[int, typer.Option("--num-nodes", min=1, help="Nodes for multi-node DDP.")] = 1,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed.")] = None,
    progress: ShowProgress = True,
):
    """Train a BSRNN for one target on a curated manifest (noise-robust options: --weighting, --truncate)."""
    from pipelines.config import parse_sets
    from pipelines.runs import RunDir, new_run_settings, resumed_run_settings
    from pipelines.train import train

    if target is not None and not target.strip():
        raise StemcurateError("--target: empty; give a stem name (vocals, bass, drums, other, ...)")
    run = RunDir(out or Path("runs") / (target or "vocals"))
    overrides = parse_sets(sets)
    options = dict(
        max_steps=max_steps,
        num_workers=num_workers,
        batch_size=batch_size,
        weighting=weighting,
        truncate=truncate,
        truncate_quantile=truncate_quantile,
        truncate_mode=truncate_mode,
        truncate_warmup=truncate_warmup,
        valid_tracks=parse_list(valid_tracks, "--valid-tracks"),
        valid_fraction=valid_fraction,
        seed=seed,
    )
    if resume:
        settings = resumed_run_settings(
            run,
            target=target,
            model=model,
            manifest=manifest,
            init_from=init_from,
            overrides=overrides,
            options=options,
            export_dir=export_dir,
        )
    else:
        settings = new_run_settings(
            accelerator=accelerator,
            target=target,
            model=model,
            manifest=manifest,
            overrides=overrides,
            init_from=init_from,
            export_dir=export_dir,
            **options,
        )
    result = train(
        settings.manifest,
        model=settings.model,
        config=settings.train,
        out=run.path,
        resume=resume,
        init_from=init_from,
        accelerator=accelerator,
        devices=_devices(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        export_dir=settings.export_dir,
        progress=progress,
    )
    if result is None:  # not rank 0
        return
    out_console.print(f"steps          {result.global_step}")
    if result.best_usdr is not None:
        out_console.print(f"best val uSDR  {result.best_usdr:.2f} dB")
    if settings.train.truncate:
        for name, frac in result.dropped.items():
            if frac is not None:
                out_console.print(f"dropped {name:<7}{frac:.1%} of examples (loss truncation)")
    out_console.print(f"run folder     {result.run_dir}")
    out_console.print(f"exported model {result.exported}")


@app.command(name="evaluate")
@guarded
def evaluate_cmd(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Models: exported .ckpt, Lightning checkpoint, training run folder or saved_models folder (one or "
            "more)."
        ),
    ],
    data: Annotated[
        Optional[Path], typer.Option("--data", "-d", help="Dataset root (default: the run's data, else $MUSDB_DIR).")
    ] = None,
    subset: Annotated[str, typer.Option("--subset", help="Subset to evaluate on.")] = "test",
    targets: Annotated[
        Optional[str], typer.Option("--targets", help="Comma-separated targets (default: every model found).")
    ] = None,
    tracks: Annotated[
        Optional[int], typer.Option("--tracks", "-n", min=1, help="Only the first N tracks (a quick check).")
    ] = None,
    track: Annotated[
        Optional[list[str]],
        typer.Option("--track", help="Only this track of the subset, by name (repeatable; with -n, the first N)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, ...")] = "cpu",
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Results file (default RUN/results.parquet or results.parquet; results_SUBSET.parquet for another "
            "subset).",
        ),
    ] = None,
    frame: Annotated[float, typer.Option("--frame", help="Separation frame, seconds.")] = 3.0,
    hop: Annotated[float, typer.Option("--hop", help="Separation hop, seconds.")] = 2.5,
    progress: ShowProgress = True,
):
    """Separate a test set and print uSDR (mean ± std) and cSDR (median) per target."""
    from bsrnn.checkpoint import load_models
    from curate.common.cliutil import progress_bar
    from curate.data.datasets import default_root
    from pipelines.evaluate import default_data_root, evaluate, results_paths, summary_table, write_results
    from pipelines.runs import RunDir, run_folder

    models = {t: m for t, (_, m) in load_models(sources, parse_list(targets, "--targets"), device=device).items()}
    run = run_folder(sources)
    root = data or default_data_root(run) or default_root()
    if root is None:
        raise StemcurateError("no dataset: pass --data DIR or set MUSDB_DIR")
    out = output or (run or RunDir(Path("."))).results(subset)  # another subset never replaces the test results
    results_paths(
        out, inputs=[*sources, root]
    )  # refuse a manifest, a model or another file as the output before any work
    with progress_bar(progress) as bar:
        total = min(len(set(track)), tracks or len(set(track))) if track else tracks
        task = bar.add_task("evaluate", total=total, item="")
        results = evaluate(
            models,
            root,
            subset=subset,
            tracks=tracks,
            track_names=track,
            device=device,
            frame_s=frame,
            hop_s=hop,
            on_track=lambda name: bar.update(task, advance=1, item=name),
        )
    header = f"models: {', '.join(map(str, sources))}  data: {root} ({subset}, {results['track'].nunique()} tracks)"
    path, log = write_results(results, out, header=header)
    out_console.print(header)
    out_console.print(summary_table(results))
    out_console.print(f"results {path}\nlog     {log}")


@app.command(name="separate")
@guarded
def separate_cmd(
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="wav/mp3/flac or MUSDB18 .stem.mp4 file, or a folder searched recursively."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder: OUT/<song>/<target>.<format>.")] = Path(
        "separated"
    ),
    targets: Annotated[
        Optional[list[str]],
        typer.Option("--target", "-t", help="Target to separate (repeatable; default: all models found)."),
    ] = None,
    checkpoints: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--checkpoint",
            "-c",
            help="Model: exported .ckpt, Lightning checkpoint, training run folder or saved_models folder "
            "(repeatable; default saved_models).",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="cpu, cuda, ...")] = "cpu",
    residual: Annotated[bool, typer.Option("--residual", help="Also write no_<target> (input minus target).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="wav, flac or mp3.")] = "wav",
    bits: Annotated[
        Optional[str],
        typer.Option(
            "--bits", help="16, 24 or float for wav (default float); 16 or 24 for flac (default 24); not for mp3."
        ),
    ] = None,
    clip_mode: Annotated[
        str,
        typer.Option(
            "--clip-mode",
            help="Samples beyond full scale: rescale (the file, to just below full scale), clamp, or none.",
        ),
    ] = "rescale",
    frame: Annotated[float, typer.Option("--frame", help="Separation frame, seconds.")] = 3.0,
    hop: Annotated[float, typer.Option("--hop", help="Separation hop, seconds.")] = 2.5,
    precision: Annotated[
        str, typer.Option("--precision", help="fp32, bf16 (autocast) or int8 (dynamic quantisation, CPU).")
    ] = "fp32",
    batch_size: Annotated[
        Optional[int],
        typer.Option("--batch-size", min=1, help="Frames per model call (default 1 on the CPU, 4 on a GPU)."),
    ] = None,
    progress: ShowProgress = True,
):
    """Separate songs into stems with trained models."""
    from curate.common.atomic import check_folder
    from curate.common.cliutil import err_console, progress_bar
    from pipelines.separate import (
        check_song_folders,
        find_inputs,
        input_root,
        load_separator,
        output_folders,
        output_subtype,
        separate_files,
    )

    targets = [t for item in targets or [] for t in parse_list(item, "--target")] or None
    if output.exists() and not output.is_dir():
        raise StemcurateError(f"{output}: exists and is not a folder (--output is the folder the stems go to)")
    if input.is_dir() and output.resolve() == input.resolve():
        raise StemcurateError(
            f"{output}: --output is the input folder; write the stems to another folder (or one inside it)"
        )
    output_subtype(fmt, bits, clip_mode)
    inputs = find_inputs(input, exclude=output)
    check_folder(output)
    named = output_folders(inputs, input_root(input), output)
    check_song_folders([folder for folder, _ in named.values()], output)
    sep = load_separator(
        checkpoints, targets, device=device, frame_s=frame, hop_s=hop, precision=precision, batch_size=batch_size
    )
    with progress_bar(progress) as bar:
        task = bar.add_task("separate", total=len(inputs), item="")
        report = separate_files(
            inputs,
            output,
            sep,
            root=input_root(input),
            fmt=fmt,
            bits=bits,
            residual=residual,
            clip_mode=clip_mode,
            on_file=lambda p: bar.update(task, advance=1, item=p.name),
        )
    for path, why in report.failed:  # the consoles print names literally (no rich markup)
        err_console.print(f"skipped {path}: {why}")
    for path, folder, why in report.renamed:
        out_console.print(f"{path} -> {folder} ({why})")
    for path, channels in report.channels:
        out_console.print(f"{path}: {channels} channels, the first {sep.channels} separated")
    for path, action, peak in report.clipped:
        out_console.print(f"{path}: peak {peak:.3f} above full scale, {action}")
    out_console.print(
        f"{report.separated} of {len(inputs)} files separated into {', '.join(sep.targets)}; {len(report.written)} "
        f"files in {output}"
    )
    if report.failed and len(report.failed) == len(inputs):
        raise StemcurateError(f"{input}: no file could be separated")


@app.command(name="report")
@guarded
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="HTML file (default RUN_DIR/run_report.html).")
    ] = None,
):
    """Write a self-contained HTML report of a training run: curves, truncation, evaluation, settings."""
    from reports.run import run_report

    out_console.print(f"run report: {run_report(run_dir, output)}")


def main() -> None:
    """Console-script entry point."""
    invoke(app)


if __name__ == "__main__":
    main()
