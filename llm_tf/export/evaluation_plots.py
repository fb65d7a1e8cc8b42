"""Charts of a SavedModel evaluation (:func:`llm_tf.export.saved_model_eval.evaluate_saved_model`):
the confusion matrix and the metric per slice.

The pipeline's Evaluator names the files and calls these.
"""

from typing import Any

from llm_tf import plots
from llm_tf.export.saved_model_eval import bucket_order

#: Slices drawn, in order: the result's key and the panel's title.
SLICES = (("by_label", "per {label}"), ("by_length", "per length bucket (words)"))


def render_confusion_matrix(confusion: dict[str, Any], path: str, title: str = "") -> None:
    """Draws gold x predicted counts, each cell shaded by its share of the gold row.

    Args:
        confusion: ``{"labels", "counts", "unit"}`` (``saved_model_eval.confusion_matrix``).
        path: The PNG to write.
        title: A line above the matrix (e.g. the model's name).
    """
    labels, counts, unit = confusion["labels"], confusion["counts"], confusion["unit"]
    totals = [sum(row) for row in counts]
    shares = [[c / total if total else 0.0 for c in row] for row, total in zip(counts, totals)]
    size = len(labels)
    plt = plots.pyplot()
    side = min(max(4.5, 0.9 * size + 2.5), 16)
    figure, ax = plt.subplots(figsize=(side + 1.4, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fontsize = 10 if size <= 6 else 8 if size <= 12 else 6
    for i in range(size):
        for j in range(size):
            color = "white" if shares[i][j] > 0.6 else "black"
            ax.text(j, i, f"{counts[i][j]:,}\n{100 * shares[i][j]:.0f}%", ha="center", va="center", color=color,
                    fontsize=fontsize)
    kind = "entity type" if unit == "word" else "label"
    ax.set_xticks(range(size), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right")
    ax.set_yticks(range(size), [f"{name} ({total:,})" for name, total in zip(labels, totals)])
    ax.set_xlabel(f"predicted {kind}")
    ax.set_ylabel(f"gold {kind} (its {unit}s)")
    what = "words, by entity type (B-/I- dropped)" if unit == "word" else f"{unit}s"
    ax.set_title(f"Confusion matrix: {sum(totals):,} {what}" + (f"\n{title}" if title else ""), fontsize=10)
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the gold row")
    figure.tight_layout()
    plots.save_png(figure, path)


def _annotate(ax, bars, texts: list[str]) -> None:
    """Writes each text inside its bar's foot (white), or above a bar too short to hold it."""
    for bar, text in zip(bars, texts):
        x, height = bar.get_x() + bar.get_width() / 2, bar.get_height()
        inside = height >= 0.2
        ax.annotate(text, (x, 0.0 if inside else height), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=9, color="white" if inside else "black")


def render_sliced_metrics(result: dict[str, Any], path: str, baseline: dict[str, Any] | None = None,
                          title: str = "") -> None:
    """Draws the metric per label (NER: per entity type) and per length bucket, with the overall value.

    Each bar is annotated with its value and slice size; a served model's values (``baseline``)
    are drawn as black marks.

    Args:
        result: An evaluation (``metric``, ``value``, ``count``, ``by_label``, ``by_length``).
        path: The PNG to write.
        baseline: The served model's evaluation on the same data, or None.
        title: A line under the figure's title (e.g. the model's name).
    """
    metric = result["metric"]
    ner = metric == "entity_f1"
    plt = plots.pyplot()
    widths = [max(len(result[key]), 2) for key, _ in SLICES]
    figure, axes = plt.subplots(1, 2, figsize=(max(10.0, 0.9 * sum(widths) + 3), 4.8),
                                gridspec_kw={"width_ratios": widths}, sharey=True)
    for ax, (key, name) in zip(axes, SLICES):
        slices = result[key]
        names = sorted(slices, key=bucket_order) if key == "by_length" else list(slices)
        values = [slices[n]["value"] for n in names]
        bars = ax.bar(range(len(names)), values, color="tab:blue" if key == "by_label" else "teal", width=0.6)
        _annotate(ax, bars, [f"{v:.3f}\nn={slices[n]['count']:,}" for n, v in zip(names, values)])
        ax.axhline(result["value"], color="black", linestyle="--", linewidth=1,
                   label=f"overall {result['value']:.3f} ({result['count']:,} texts)")
        if baseline:
            marks = [(i, baseline[key][n]["value"]) for i, n in enumerate(names) if n in baseline[key]]
            if marks:
                ax.scatter(*zip(*marks), marker="_", s=600, linewidths=2.5, color="black", zorder=3,
                           label=f"served model (overall {baseline['value']:.3f})")
        ax.set_xticks(range(len(names)), names, rotation=30 if max(map(len, names), default=0) > 6 else 0)
        ax.set_xlim(-0.6, len(names) - 0.4)
        unit = "gold entities" if ner and key == "by_label" else "texts"
        ax.set_title(name.format(label="entity type" if ner else "gold label") + f" (n = {unit})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=9)
    axes[0].set_ylim(0, 1.1)
    axes[0].set_ylabel(metric)
    figure.suptitle(f"{metric} per slice" + (f"\n{title}" if title else ""), fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    plots.save_png(figure, path)
