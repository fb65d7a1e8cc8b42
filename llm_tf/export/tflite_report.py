"""Writes the TFLite variants report: ``report.json``, ``report.md`` and ``report.png``."""

import os

from llm_tf import plots
from llm_tf.io_utils import atomic_write_json, atomic_write_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _length(report: dict) -> str:
    seq_length = (report.get("export") or {}).get("seq_length")
    if report.get("dynamic_length"):
        return (f"dynamic, 1 to {seq_length} (tokens form: inputs resized to each text's length; "
                "text form: cut to the batch's longest text)")
    return f"fixed at {seq_length}"


def _speedup(result: dict, float32: dict) -> str:
    base = float32.get(result["form"])
    return f"{base / result['latency_ms_p50']:.2f}x" if base and result["latency_ms_p50"] else "-"


def _size_rows(variants: list[dict]) -> list[str]:
    rows = []
    for v in variants:
        parts = v.get("size_breakdown") or {}
        if not parts:
            continue
        weights = ", ".join(f"{kind} {size / 1e6:.3f}" for kind, size in
                            sorted(parts.get("constants", {}).items(), key=lambda kv: -kv[1]) if size >= 1000)
        metadata = sum(parts.get("metadata", {}).values())
        rows.append(f"| {v['name']} | {weights or '-'} | {parts.get('tokenizer_models', 0) / 1e6:.3f} "
                    f"| {metadata / 1e6:.3f} | {parts.get('associated_files', 0) / 1e6:.3f} "
                    f"| {parts.get('other', 0) / 1e6:.3f} | {parts.get('total', v['size_bytes']) / 1e6:.3f} |")
    if not rows:
        return []
    return ["", "Size breakdown (MB; constants by stored type, below 1 KB left out; metadata and associated files "
            "each hold labels, vocabulary and model facts):", "",
            "| variant | constants (weights) | tokenizer models | metadata | associated files (zip) | other "
            "(graph) | total |", "|---|---|---:|---:|---:|---:|---:|"] + rows


def _kernel_rows(variants: list[dict]) -> list[str]:
    rows = []
    for v in variants:
        kernels = v.get("kernels")
        if not kernels:
            continue
        left = ", ".join(f"{op} {n}" for op, n in kernels["tflite_kernels"].items()) or "-"
        rows.append(f"| {v['name']} | {kernels['nodes']} | {kernels['delegated_nodes']} "
                    f"| {kernels['delegate_partitions']} | {left} |")
    if not rows:
        return []
    return ["", "Kernels (the classifier's subgraph): nodes run by the XNNPACK delegate, in how many partitions, "
            "and the nodes left to TFLite's own kernels:", "",
            "| variant | nodes | XNNPACK nodes | XNNPACK partitions | TFLite kernels |",
            "|---|---:|---:|---:|---|"] + rows


def render_markdown(report: dict) -> str:
    """The report as a Markdown page: a table per variant, sizes, kernels and the gate verdict.

    Args:
        report: The report dict (as written to ``report.json``).

    Returns:
        Markdown text.
    """
    gate = report["gate"]
    latency = report["latency"]
    interpreter = latency.get("interpreter") or {}
    settings = (f", {interpreter['runtime']}, op resolver {interpreter['op_resolver']}"
                if interpreter.get("runtime") and interpreter.get("op_resolver") else "")
    lines = [
        "# TFLite variants",
        "",
        f"SavedModel: `{report['saved_model']}`  ",
        f"Eval data: `{report['eval_data']['source']}` ({report['eval_data']['count']} texts)  ",
        f"Representative data: `{report['representative_data']['source']}` "
        f"({report['representative_data']['count']} texts)  ",
        f"SavedModel accuracy: **{_pct(report['reference']['accuracy'])}**  ",
        f"Input length: {_length(report)}  ",
        f"Latency: interpreter invoke at batch 1, {latency['runs']} runs, {latency['num_threads']} thread(s)"
        f"{settings}  ",
        f"Gate: accuracy drop <= {gate['max_accuracy_drop']} points for "
        f"{', '.join(gate['variants'])}: **{'passed' if gate['passed'] else 'FAILED: ' + ', '.join(gate['failed'])}**",
        "",
        "| variant | size (MB) | gzip (MB) | size vs float32 | accuracy | drop (points) | agreement "
        "| max abs score diff | max abs logit diff | p50 ms | p99 ms | speed-up vs float32 (p50) "
        "| tokenizer mismatches | gate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    float32 = {v["form"]: v["latency_ms_p50"] for v in report["variants"] if v["variant"] == "float32"}
    for v in report["variants"]:
        verdict = ("pass" if v["passed"] else "**FAIL**") if v["gated"] else "not gated"
        mismatches = "-" if v["tokenizer_mismatches"] is None else str(v["tokenizer_mismatches"])
        lines.append(
            f"| {v['name']} | {_mb(v['size_bytes'])} | {_mb(v.get('gzip_bytes'))} | {_ratio(v.get('size_vs_float32'))} "
            f"| {_pct(v['accuracy'])} | {v['accuracy_drop_points']:.2f} "
            f"| {_pct(v['agreement'])} | {v['max_abs_score_diff']:.4f} | {v['max_abs_logit_diff']:.4f} "
            f"| {v['latency_ms_p50']:.3f} | {v['latency_ms_p99']:.3f} | {_speedup(v, float32)} | {mismatches} "
            f"| {verdict} |")
    lines += _size_rows(report["variants"]) + _kernel_rows(report["variants"])
    notes = [(v["name"], note) for v in report["variants"] for note in v.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name}: {note}" for name, note in notes]
    if report.get("command"):
        lines += ["", "Command:", "", "```", report["command"], "```"]
    machine = report.get("machine", {})
    if machine:
        lines += ["", "Machine: " + ", ".join(
            f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(machine.items()))]
    return "\n".join(lines) + "\n"


def render_chart(report: dict, path: str) -> None:
    """Draws accuracy, size (file and gzipped) and p50/p99 latency per variant into a PNG.

    Args:
        report: The report dict.
        path: The PNG to write.
    """
    plt = plots.pyplot()
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
    axes[1].bar(names, [v["size_bytes"] / 1e6 for v in variants], color="tab:gray", label="file")
    if all(v.get("gzip_bytes") for v in variants):
        axes[1].bar(names, [v["gzip_bytes"] / 1e6 for v in variants], width=0.4, color="tab:orange", label="gzip")
        axes[1].legend(fontsize=8)
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
    plots.save_png(figure, path)


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
