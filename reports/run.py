"""``pipelines report``: a training run at a glance: loss and validation uSDR curves, what loss
truncation dropped, per-track SDR of the evaluation, and the hyperparameters."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import escape

from curate.common.errors import StemcurateError
from curate.common.outputs import check_output
from reports import html, plots

KIND = "run report"
"""The kind of this report's HTML file (:func:`curate.common.outputs.file_kind`)."""


def _series(logs: pd.DataFrame, columns: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for col, name in columns.items():
        if col in logs.columns:
            g = logs[["step", col]].dropna()
            if len(g):
                out[name] = (g["step"].to_numpy(), g[col].to_numpy())
    return out


def _smooth(
    series: dict[str, tuple[np.ndarray, np.ndarray]], window: int = 10
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, (x, y) in series.items():
        if len(y) > 2 * window:
            y = pd.Series(y).rolling(window, min_periods=1).mean().to_numpy()
            name = f"{name} (mean of {window})"
        out[name] = (x, y)
    return out


def run_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report of training run ``run_dir`` (default ``RUN_DIR/run_report.html``)."""
    from pipelines.evaluate import summary_table
    from pipelines.runs import RunDir

    rd = RunDir(Path(run_dir))
    run = rd.path
    model_cfg, train_cfg, extra = rd.load_config()
    output = check_output(Path(output) if output is not None else rd.report, KIND, inputs=[run])
    metrics = rd.metrics_csv
    if not metrics.is_file():
        raise StemcurateError(
            f"{run}: no {metrics.relative_to(run)}: the run logged nothing yet (it stopped before its first "
            "logged step, or is still running); train it further with --resume"
        )
    try:
        logs = pd.read_csv(metrics)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StemcurateError(f"{metrics}: unreadable ({str(exc).splitlines()[0][:120]})") from None
    if "step" not in logs.columns:
        raise StemcurateError(f"{metrics}: no 'step' column; not a training log")
    summary = json.loads(rd.summary.read_text()) if rd.summary.is_file() else {}

    parts = [
        html.cards(
            [
                ("target", model_cfg.target),
                ("steps", str(summary.get("global_step", int(logs["step"].max()) + 1))),
                ("best val uSDR", f"{summary['best_usdr']:.2f} dB" if summary.get("best_usdr") is not None else "—"),
                ("weighting", train_cfg.weighting),
                (
                    "loss truncation",
                    f"{train_cfg.truncate_mode}, c={train_cfg.truncate_quantile:g}, {train_cfg.truncate_on} loss"
                    if train_cfg.truncate
                    else "off",
                ),
            ]
        )
    ]
    loss = _smooth(
        _series(logs, {"train/loss": "training loss (weighted)", "train/loss_unweighted": "training loss (unweighted)"})
    )
    parts += [
        "<h2>Loss</h2>",
        str(html.img(plots.curves(loss, xlabel="step", ylabel="L1 spectrogram + waveform"), "training loss curve"))
        if loss
        else "<p class=note>No training loss logged.</p>",
    ]
    val = _series(logs, {"val/usdr": "validation uSDR"})
    parts += [
        "<h2>Validation</h2>",
        str(html.img(plots.curves(val, xlabel="step", ylabel="uSDR, dB"), "validation uSDR curve"))
        if val
        else "<p class=note>No validation in this run (no held-back tracks).</p>",
    ]
    dropped = _smooth(
        _series(
            logs,
            {
                "train/dropped": "dropped (all examples)",
                "train/dropped_corrupted": "among corrupted (cumulative)",
                "train/dropped_clean": "among clean (cumulative)",
            },
        )
    )
    if train_cfg.truncate and dropped:
        parts += [
            "<h2>Loss truncation</h2>",
            f"<p class=note>Examples above the {1 - train_cfg.truncate_quantile:.0%} loss quantile "
            f"({train_cfg.truncate_mode}, "
            f"{'loss relative to a silent estimate' if train_cfg.truncate_on == 'relative' else 'raw loss'}) "
            f"are dropped after step {train_cfg.truncate_warmup}. "
            "The corrupted/clean curves appear when the data carries ground truth from <code>curate "
            "corrupt</code>.</p>",
            str(html.img(plots.curves(dropped, xlabel="step", ylabel="fraction dropped"), "dropped fraction curve")),
        ]
    results_path = rd.results()
    if results_path.is_file():
        res = pd.read_parquet(results_path)
        tracks = list(dict.fromkeys(res["track"]))
        targets = list(dict.fromkeys(res["target"]))
        by = {t: res[res["target"] == t].set_index("track").reindex(tracks) for t in targets}
        parts += [
            "<h2>Evaluation</h2>",
            f"<pre>{escape(summary_table(res))}</pre>",
            str(
                html.img(
                    plots.per_track_bars(tracks, {t: by[t]["usdr"].to_numpy() for t in targets}, ylabel="uSDR, dB"),
                    "uSDR per track",
                )
            ),
            str(
                html.img(
                    plots.boxes({t: by[t]["csdr"].to_numpy() for t in targets}, ylabel="cSDR, dB"), "cSDR per target"
                )
            ),
        ]
    else:
        parts += [
            "<h2>Evaluation</h2>",
            f"<p class=note>Not evaluated yet: <code>pipelines evaluate {escape(str(run))}</code>.</p>",
        ]
    hp = [[f"model.{k}", json.dumps(v)] for k, v in asdict(model_cfg).items()] + [
        [f"train.{k}", json.dumps(v)] for k, v in asdict(train_cfg).items()
    ]
    parts += [
        "<h2>Hyperparameters</h2>",
        html.table(["setting", "value"], hp),
        f"<p class=note>Manifest: <code>{escape(str(extra.get('manifest')))}</code>; "
        f"{len(extra.get('train_tracks') or [])} training and "
        f"{len(extra.get('valid_tracks') or [])} validation tracks.</p>",
    ]
    return html.write_page(
        output, html.page(f"Training run: {model_cfg.target}", str(run), "\n".join(parts), kind=KIND)
    )
