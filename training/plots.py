"""The evaluation's pictures: PR and ROC curves, similarity histograms, t-SNE and a retrieval grid (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.metrics import roc_curve, sweep  # noqa: E402

DPI = 80


def _save(fig, path: Path, palette: bool = False) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    if palette:  # photos in a PNG: 256 colours keep the committed file small
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)


def pr_curves(
    models: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: dict[str, float], path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    grid = np.linspace(-1, 1, 4001)
    for name, (pos, neg) in models.items():
        s = sweep(pos, neg, grid)
        ax.plot(s["recall"], s["precision"], label=name)
        if name in thresholds:
            i = np.searchsorted(grid, thresholds[name])
            ax.plot(s["recall"][i], s["precision"][i], "o", color=ax.lines[-1].get_color())
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title="Edited copy vs different photo",
        xlim=(0, 1.01),
        ylim=(0.5, 1.005),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    _save(fig, path)


def roc_curves(models: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (pos, neg) in models.items():
        fpr, tpr = roc_curve(pos, neg)
        ax.plot(np.maximum(fpr, 1e-8), tpr, label=name)
    ax.set(
        xscale="log",
        xlabel="false-positive rate (log)",
        ylabel="true-positive rate",
        title="ROC",
        xlim=(1e-7, 1),
        ylim=(0, 1.01),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def histograms(pos: np.ndarray, neg: np.ndarray, marks: dict[str, float], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    bins = np.linspace(-0.3, 1.0, 131)
    ax.hist(
        neg, bins=bins, density=True, alpha=0.6, label=f"different photos ({len(neg):,})", color="tab:red"
    )
    ax.hist(pos, bins=bins, density=True, alpha=0.6, label=f"edited copies ({len(pos):,})", color="tab:green")
    for (name, t), style in zip(marks.items(), ["-", "--", ":"], strict=False):
        ax.axvline(t, color="k", linestyle=style, label=f"{name} {t:.3f}")
    ax.set(yscale="log", xlabel="cosine similarity", ylabel="density (log)", title=title)
    ax.legend(fontsize=7)
    _save(fig, path)


def tsne(
    emb: np.ndarray, labels: np.ndarray, kinds: np.ndarray, title: str, path: Path, seed: int = 0
) -> None:
    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, init="pca", perplexity=20, random_state=seed).fit_transform(emb)
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("tab20")
    for i, lab in enumerate(np.unique(labels)):
        m = labels == lab
        ax.scatter(xy[m, 0], xy[m, 1], s=8, color=cmap(i % 20))
        o = m & (kinds == "original")
        ax.scatter(xy[o, 0], xy[o, 1], s=40, marker="*", color=cmap(i % 20), edgecolor="k", linewidth=0.5)
    ax.set(title=title, xticks=[], yticks=[])
    _save(fig, path)


def retrieval_grid(
    images: np.ndarray,
    sim: np.ndarray,
    queries: list[int],
    labels: np.ndarray,
    captions: list[str],
    path: Path,
    k: int = 5,
) -> None:
    """Each row: a query, then its top-k (the query itself excluded); matches framed green, others red."""
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.3 * (k + 1), 1.4 * len(queries)))
    for r, q in enumerate(queries):
        s = sim[q].copy()
        s[q] = -np.inf
        top = np.argsort(-s)[:k]
        cells = [(q, f"query\n{captions[q]}", "k")]
        cells += [(j, f"{s[j]:.3f}", "g" if labels[j] == labels[q] else "r") for j in top]
        for c, (idx, text, colour) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(images[idx][::2, ::2])
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_color(colour)
                sp.set_linewidth(3)
            ax.set_title(text, fontsize=6)
    _save(fig, path, palette=True)
