"""Small matplotlib figures (Agg) returned as PNG data URIs, for self-contained HTML pages."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STEM_COLOURS = {"vocals": "#d1495b", "bass": "#00798c", "drums": "#edae49", "other": "#66a182"}


def colour(stem: str) -> str:
    return STEM_COLOURS.get(stem, "#555555")


def to_data_uri(fig, *, dpi: int = 96) -> str:
    """Render ``fig`` to a PNG ``data:`` URI and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def histograms(
    values: dict[str, np.ndarray],
    *,
    xlabel: str,
    marker: float | None = None,
    marker_label: str = "",
    bins=None,
    title: str = "",
) -> str:
    """One small histogram per stem side by side, a vertical line at ``marker``."""
    n = max(1, len(values))
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n, 2.4), sharey=False, squeeze=False)
    for ax, (stem, v) in zip(axes[0], values.items()):
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        ax.hist(v, bins=bins if bins is not None else 20, color=colour(stem), alpha=0.85)
        if marker is not None:
            ax.axvline(marker, color="black", ls="--", lw=1, label=marker_label or None)
        ax.set_title(f"{stem} (n={len(v)})", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(labelsize=8)
    if marker_label:
        axes[0][0].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=11)
    return to_data_uri(fig)


def confusion(labels: list[str], predicted: list[str], classes: list[str]) -> str:
    """Label (rows) vs predicted content (columns) counts as an annotated heat map."""
    idx = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=int)
    for a, b in zip(labels, predicted):
        if a in idx and b in idx:
            m[idx[a], idx[b]] += 1
    fig, ax = plt.subplots(figsize=(0.9 * len(classes) + 1.6, 0.8 * len(classes) + 1.2))
    ax.imshow(m, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(classes)), classes, fontsize=9)
    ax.set_yticks(range(len(classes)), classes, fontsize=9)
    ax.set_xlabel("predicted content")
    ax.set_ylabel("label")
    return to_data_uri(fig)


def spectrogram(audio: np.ndarray, sample_rate: int, *, width: float = 2.4, height: float = 1.0) -> str:
    """A small log-magnitude spectrogram (0-11 kHz) of mono ``audio`` without axes."""
    from scipy.signal import stft

    _, _, z = stft(audio, fs=sample_rate, nperseg=1024, noverlap=768)
    db = 20 * np.log10(np.abs(z) + 1e-6)
    top = min(db.shape[0], int(11025 / (sample_rate / 1024)) + 1)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.imshow(db[:top], origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max())
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return to_data_uri(fig, dpi=80)


def roc_pr(y_true: np.ndarray, score: np.ndarray, *, threshold_point: tuple[float, float] | None = None) -> str:
    """ROC and precision-recall curves of ``score`` (higher = more likely corrupted)."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, score)
    prec, rec, _ = precision_recall_curve(y_true, score)
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.4, 3.0))
    a.plot(fpr, tpr, color="#00798c")
    a.plot([0, 1], [0, 1], color="#bbbbbb", ls=":")
    a.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUROC {auc(fpr, tpr):.3f})")
    b.plot(rec, prec, color="#d1495b")
    if threshold_point is not None:
        b.plot([threshold_point[0]], [threshold_point[1]], "ko", ms=5, label="at the threshold")
        b.legend(fontsize=8, loc="lower left")
    b.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (a, b):
        ax.title.set_fontsize(10)
    return to_data_uri(fig)


def curves(series: dict[str, tuple[np.ndarray, np.ndarray]], *, xlabel: str, ylabel: str, title: str = "") -> str:
    """Line plot of named ``(x, y)`` series."""
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, lw=1.3)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return to_data_uri(fig)


def per_track_bars(tracks: list[str], values: dict[str, np.ndarray], *, ylabel: str) -> str:
    """Grouped bars of one value per track and target."""
    n = len(values)
    x = np.arange(len(tracks))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(tracks) * max(1, n) + 1.5), 2.8))
    width = 0.8 / max(1, n)
    for i, (name, v) in enumerate(values.items()):
        ax.bar(x + i * width - 0.4 + width / 2, v, width, label=name, color=colour(name))
    ax.set_xticks(x, tracks, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def boxes(values: dict[str, np.ndarray], *, ylabel: str) -> str:
    """One box per named group."""
    fig, ax = plt.subplots(figsize=(1.2 * max(1, len(values)) + 1.5, 2.8))
    data = [np.asarray(v, dtype=float)[np.isfinite(v)] for v in values.values()]
    bp = ax.boxplot(data, patch_artist=True)
    ax.set_xticks(range(1, len(values) + 1), list(values))
    for patch, name in zip(bp["boxes"], values):
        patch.set_facecolor(colour(name))
    ax.set_ylabel(ylabel)
    return to_data_uri(fig)
