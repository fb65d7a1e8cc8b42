"""Writes the TFLite variants report: ``report.json``, ``report.md`` and ``report.png``."""

import os

from llm_tf.io_utils import atomic_write_json, atomic_write_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def render_markdown(report: dict) -> str:
    """The report as a Markdown page (a table per variant and the gate verdict).

    Args:
        report: The report dict (as written to ``report.json``).

    Returns:
        Markdown text.
    """
    gate = report["gate"]
    lines = [
        "# TFLite variants",
        "",
        f"SavedModel: `{report['saved_model']}`  ",
        f"Eval data: `{report['eval_data']['source']}` ({report['eval_data']['count']} texts)  ",
        f"Representative data: `{report['representative_data']['source']}` "
        f"({report['representative_data']['count']} texts)  ",
        f"SavedModel accuracy: **{_pct(report['reference']['accuracy'])}**  ",
        f"Latency: interpreter invoke at batch 1, {report['latency']['runs']} runs, "
        f"{report['latency']['num_threads']} thread(s)  ",
        f"Gate: accuracy drop <= {gate['max_accuracy_drop']} points for "
        f"{', '.join(gate['variants'])}: **{'passed' if gate['passed'] else 'FAILED: ' + ', '.join(gate['failed'])}**",
        "",
        "| variant | size (MB) | accuracy | drop (points) | agreement | max abs score diff | max abs logit diff "
        "| p50 ms | p99 ms | tokenizer mismatches | gate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in report["variants"]:
        verdict = ("pass" if v["passed"] else "**FAIL**") if v["gated"] else "not gated"
        mismatches = "-" if v["tokenizer_mismatches"] is None else str(v["tokenizer_mismatches"])
        lines.append(
            f"| {v['name']} | {v['size_bytes'] / 1e6:.2f} | {_pct(v['accuracy'])} | {v['accuracy_drop_points']:.2f} "
            f"| {_pct(v['agreement'])} | {v['max_abs_score_diff']:.4f} | {v['max_abs_logit_diff']:.4f} "
            f"| {v['latency_ms_p50']:.3f} | {v['latency_ms_p99']:.3f} | {mismatches} | {verdict} |")
    notes = [(v["name"], note) for v in report["variants"] for note in v.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name}: {note}" for name, note in notes]
    if report.get("command"):
        lines += ["", "Command:", "", "```", report["command"], "```"]
    machine = report.get("machine", {})
    if machine:
        lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in sorted(machine.items()))]
    return "\n".join(lines) + "\n"


def render_chart(report: dict, path: str) -> None:
    """Draws accuracy, size and p50 latency per variant into a PNG.

    Args:
        report: The report dict.
        path: The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    names = [v["name"] for v in variants]
    colors = ["tab:blue" if v["passed"] else "tab:red" for v in variants]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    accuracy = [v["accuracy"] * 100 for v in variants]
    axes[0].bar(names, accuracy, color=colors)
    reference = report["reference"]["accuracy"] * 100
    axes[0].axhline(reference, color="black", linestyle="--", label=f"SavedModel {reference:.2f}%")
    axes[0].axhline(reference - report["gate"]["max_accuracy_drop"], color="tab:red", linestyle=":", label="gate")
    low = min(accuracy + [reference]) - max(2.0, report["gate"]["max_accuracy_drop"] * 2)
    axes[0].set_ylim(max(0.0, low), min(100.0, max(accuracy + [reference]) + 1.0))
    axes[0].set_title("accuracy (%)")
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].bar(names, [v["size_bytes"] / 1e6 for v in variants], color="tab:gray")
    axes[1].set_title("file size (MB)")
    axes[2].bar(names, [v["latency_ms_p50"] for v in variants], color="tab:green", label="p50")
    axes[2].scatter(names, [v["latency_ms_p99"] for v in variants], color="black", marker="_", s=200, label="p99")
    axes[2].set_title("invoke latency at batch 1 (ms)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    figure.tight_layout()
    tmp = path + ".partial.png"
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)


def write_report(report: dict, directory: str) -> dict[str, str]:
    """Writes ``report.json``, ``report.md`` and ``report.png`` into ``directory``.

    Args:
        report: The report dict.
        directory: An existing directory.

    Returns:
        Kind (``json``, ``md``, ``png``) -> path.
    """
    paths = {"json": os.path.join(directory, REPORT_JSON), "md": os.path.join(directory, REPORT_MD),
             "png": os.path.join(directory, REPORT_PNG)}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["md"], render_markdown(report))
    render_chart(report, paths["png"])
    return paths
