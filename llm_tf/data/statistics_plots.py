"""Charts of a prepared data set's statistics (``statistics.json``): token lengths and label counts per split.

:func:`llm_tf.data.prepared.write_statistics_plots` names the files and calls these.
"""

from typing import Any

from llm_tf import plots
from llm_tf.data.splits import SPLITS
from llm_tf.errors import DataError

#: Above this ratio between the largest and the smallest label count, counts are drawn on a log scale.
LOG_SCALE_RATIO = 50


def has_labels(stats: dict[str, Any]) -> bool:
    """Whether any split of the statistics counts labels (or tags)."""
    return any(stats.get(split, {}).get("labels") for split in SPLITS)


def render_token_lengths(stats: dict[str, Any], path: str) -> None:
    """Draws the share of examples per token length, one outline per split, with the truncation point.

    Args:
        stats: The statistics (``statistics.json``); each split's ``token_histogram`` is drawn.
        path: The PNG to write.

    Raises:
        DataError: No split has a ``token_histogram`` (statistics of an older ``llm_prepare``).
    """
    splits = [s for s in SPLITS if "token_histogram" in stats.get(s, {})]
    if not splits:
        raise DataError("the statistics have no token_histogram (written by an older llm_prepare: prepare again)")
    plt = plots.pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.8))
    first = stats[splits[0]]["token_histogram"]
    width, limit = first["bin_width"], first["bin_width"] * len(first["counts"])
    cut = first["max_seq_length"] - first["special_tokens"]
    longest = max(stats[s]["tokens"].get("max", 0) for s in splits)
    colors = {"train": "tab:blue", "eval": "tab:orange"}
    overflow = []
    for split in splits:
        histogram = stats[split]["token_histogram"]
        count = max(stats[split]["count"], 1)
        shares = [100.0 * c / count for c in histogram["counts"]]
        edges = [i * histogram["bin_width"] for i in range(len(shares) + 1)]
        median = stats[split]["tokens"].get("p50", 0)
        truncated = 100.0 * stats[split].get("truncated_fraction", 0.0)
        label = (f"{split}: {stats[split]['count']:,} examples, median {median:g} tokens, "
                 f"{truncated:.1f}% truncated")
        color = colors.get(split)
        ax.stairs(shares, edges, fill=True, alpha=0.25, color=color)
        ax.stairs(shares, edges, color=color, linewidth=1.5, label=label)
        if histogram["overflow"]:
            overflow.append(f"{split} {histogram['overflow']:,}")
    ax.axvline(cut, color="tab:red", linestyle="--", linewidth=1.5,
               label=f"max_seq_length {first['max_seq_length']} = {cut} tokens + {first['special_tokens']} special")
    right = limit if overflow else min(limit, max(longest + width, cut) * 1.1)
    ax.axvspan(cut, right, color="tab:red", alpha=0.06, label="truncated (cut to max_seq_length)")
    ax.set_xlim(0, right)
    ax.set_ylim(0, None)
    if overflow:
        ax.annotate(f"longer than {limit} tokens (not drawn): {', '.join(overflow)}", (0.99, 0.6),
                    xycoords="axes fraction", ha="right", fontsize=8, color="dimgray")
    ax.set_xlabel(f"tokens per example (sub-words, without special tokens; bins of {width})")
    ax.set_ylabel("% of the split's examples")
    ax.set_title("Token lengths per split")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    plots.save_png(figure, path)


def render_label_counts(stats: dict[str, Any], path: str, order: list[str] | None = None) -> None:
    """Draws the count of each label (NER: each tag, counted per word) in each split, one panel per split.

    Args:
        stats: The statistics (``statistics.json``); each split's ``labels`` is drawn.
        path: The PNG to write.
        order: The labels from the top (the label vocabulary's order); others follow, sorted.

    Raises:
        DataError: No split has labels (unlabelled text: there is nothing to draw).
    """
    splits = [s for s in SPLITS if stats.get(s, {}).get("labels")]
    if not splits:
        raise DataError("the statistics count no labels (unlabelled data has no label chart)")
    seen = {name for s in splits for name in stats[s]["labels"]}
    names = [n for n in order or [] if n in seen] + sorted(seen - set(order or []))
    words = stats[splits[0]].get("task") == "token_classification"
    counts = {s: [stats[s]["labels"].get(n, {}).get("count", 0) for n in names] for s in splits}
    positive = [c for values in counts.values() for c in values if c > 0]
    log = max(positive) / min(positive) > LOG_SCALE_RATIO
    plt = plots.pyplot()
    height = max(3.0, 0.32 * len(names) + 1.6)
    figure, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), height), sharey=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        values = counts[split]
        total = max(sum(values), 1)
        bars = ax.barh(range(len(names)), values, color="tab:blue" if split == "train" else "tab:orange")
        plots.annotate_bars(ax, bars, [f"{v:,} ({100 * v / total:.1f}%)" for v in values], horizontal=True)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(0.8, max(values) * 12)
        else:
            ax.set_xlim(0, max(max(values), 1) * 1.35)
        unit = "words" if words else "examples"
        ax.set_xlabel(f"{unit}{' (log scale)' if log else ''}")
        ax.set_title(f"{split}: {total:,} {unit}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()
    axes[0][0].set_ylabel("tag" if words else "label")
    figure.suptitle("Tag counts per split (one per word)" if words else "Label counts per split")
    figure.tight_layout()
    plots.save_png(figure, path)
