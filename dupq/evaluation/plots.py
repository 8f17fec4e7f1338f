"""The report's PNG plots: precision-recall, similarity histograms, F1 vs threshold, t-SNE.

The only module of dupq that imports matplotlib (inside the functions, with the Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from dupq.evaluation.calibration import f1_curve
from dupq.evaluation.metrics import QuestionSet, classification_metrics
from dupq.evaluation.records import EvaluationReport
from dupq.evaluation.scorers import TFIDF

#: t-SNE is an illustration, not a metric: cap its cost.
TSNE_MAX_QUESTIONS = 500


def save_figure(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    from dupq.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def write_plots(
    report: EvaluationReport,
    out: Path,
    qs: QuestionSet,
    vectors: dict[str, Any],
    scores: dict[str, np.ndarray],
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    y = qs.labels
    thresholds = {s.name: s.threshold for s in report.systems}
    files: dict[str, str] = {}
    two_classes = y.min() != y.max()

    if two_classes:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, s in scores.items():
            prec, rec, _ = precision_recall_curve(y, s)
            ap = report.system(name).classification.get("average_precision", math.nan)
            ax.step(rec, prec, where="post", label=f"{name} (AP {ap:.3f})")
        ax.axhline(y.mean(), color="grey", lw=0.8, ls=":", label=f"chance ({y.mean():.2f})")
        ax.set(
            xlabel="recall",
            ylabel="precision",
            title="Precision-recall, duplicate pairs",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower left")
        files["pr_curve"] = save_figure(fig, out / "pr_curve.png")

    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.6), squeeze=False)
    for ax, (name, s) in zip(axes[0], scores.items(), strict=True):
        bins = np.linspace(min(s.min(), thresholds[name]), max(s.max(), thresholds[name]), 41)
        ax.hist(s[y == 0], bins=bins, alpha=0.6, label="not duplicate", color="tab:blue")
        ax.hist(s[y == 1], bins=bins, alpha=0.6, label="duplicate", color="tab:orange")
        ax.axvline(thresholds[name], color="black", ls="--", lw=1, label=f"threshold {thresholds[name]:.3f}")
        ax.set(title=name, xlabel="cosine similarity", ylabel="pairs")
        ax.legend(fontsize=7)
    fig.suptitle("Similarity by label")
    files["similarity_hist"] = save_figure(fig, out / "similarity_hist.png")

    if two_classes:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, s in scores.items():
            cuts, f1 = f1_curve(s, y)
            keep = np.unique(np.linspace(0, len(cuts) - 1, min(len(cuts), 2000)).astype(np.int64))
            (line,) = ax.plot(cuts[keep], f1[keep], label=name)
            chosen = classification_metrics(s, y, thresholds[name])["f1"]
            ax.plot([thresholds[name]], [chosen], "o", color=line.get_color())
        ax.set(
            xlabel="threshold (cosine)",
            ylabel="F1",
            title="F1 vs threshold (dot = chosen threshold)",
            ylim=(0, 1.02),
        )
        ax.legend()
        files["f1_threshold"] = save_figure(fig, out / "f1_threshold.png")

    tsne = tsne_plot(qs, {k: v for k, v in vectors.items() if k != TFIDF})
    if tsne is not None:
        files["tsne"] = save_figure(tsne, out / "tsne.png")
    else:
        report.notes.append("t-SNE plot skipped: fewer than 10 questions in duplicate clusters.")
    return files


def tsne_plot(qs: QuestionSet, vectors: dict[str, np.ndarray]) -> Any:
    """t-SNE of the questions of the largest duplicate clusters (≤ TSNE_MAX_QUESTIONS), per encoder."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    sizes = np.bincount(qs.cluster)
    clusters = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] > 1]
    chosen: list[int] = []
    for c in clusters:
        if len(chosen) + sizes[c] > TSNE_MAX_QUESTIONS:
            break
        chosen.append(int(c))
    members = np.flatnonzero(np.isin(qs.cluster, chosen))
    if len(members) < 10 or not vectors:
        return None
    colour = {c: i for i, c in enumerate(chosen)}
    cmap = plt.get_cmap("tab20")
    colours = [cmap(colour[c] % 20) for c in qs.cluster[members]]
    fig, axes = plt.subplots(1, len(vectors), figsize=(5.5 * len(vectors), 5), squeeze=False)
    for ax, (name, vecs) in zip(axes[0], vectors.items(), strict=True):
        x = np.asarray(vecs)[qs.qid_text[members]]
        perplexity = float(min(30.0, max(2.0, (len(members) - 1) / 3)))
        # one thread: Barnes-Hut t-SNE's OpenMP threads slow it down 10x on a busy machine
        with threadpool_limits(1):
            tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0, max_iter=500)
            xy = tsne.fit_transform(x)
        for c in chosen:  # thin lines from each member to its cluster's centre make clusters readable
            idx = np.flatnonzero(qs.cluster[members] == c)
            centre = xy[idx].mean(axis=0)
            for i in idx:
                ax.plot(
                    [xy[i, 0], centre[0]],
                    [xy[i, 1], centre[1]],
                    color=cmap(colour[c] % 20),
                    lw=0.5,
                    alpha=0.6,
                )
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=14)
        ax.set(
            title=f"{name}: {len(members)} questions, {len(chosen)} duplicate clusters", xticks=[], yticks=[]
        )
    fig.suptitle("t-SNE of question embeddings, coloured by duplicate cluster")
    return fig
