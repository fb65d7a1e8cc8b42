"""The distillation story in one table and one plot: teacher vs students, accuracy, size, latency.

Collects what the runs already measured, it trains nothing: each ``--group`` is one or more
training ``model_dir``s of the same recipe (seeds); their SST-2 dev accuracy is read from
``metrics/step_*.json`` (best of the run's evaluations, as ``best/`` keeps, and the last
one), their parameter count from ``metrics.json``. ``--tflite`` names an ``llm_quantize``
output of a group's exported model (file sizes and TFLite accuracy from its ``report.json``)
and ``--latency`` a ``benchmarks.tflite_latency`` result measured with ``--reference`` set to
the teacher (batch-1 p50 and the per-round speed-up over the teacher's float32).

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.distillation_story --teacher=teacher \\
        --group=teacher=runs/distill/teacher_minilm \\
        --group="student distilled=runs/distill/minilm_l2_s42,runs/distill/minilm_l2_s43" \\
        --tflite=teacher=runs/distill/tflite/teacher --tflite="student distilled=runs/distill/tflite/student" \\
        --latency=benchmarks/results/distillation/tflite_latency.json --latency_name="student distilled=student" \\
        --results_dir=benchmarks/results/distillation

Results: ``<results_dir>/distillation.{json,md,png}``.
"""

import argparse
import glob
import json
import os
import shlex
import statistics
import sys
import time

from benchmarks import common

#: The TFLite variant and form the phone target is stated for.
SHIP_FORM, SHIP_VARIANT = "tokens", "dynamic_int8"


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"--{flag}={value}: expected NAME=VALUE")
        out[name] = rest
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", required=True, metavar="NAME=DIR[,DIR...]",
                        help="A row: training model_dirs of one recipe (seeds).")
    parser.add_argument("--teacher", required=True, help="The --group name of the teacher.")
    parser.add_argument("--tflite", action="append", default=[], metavar="NAME=DIR",
                        help="An llm_quantize output directory of the group's exported model.")
    parser.add_argument("--latency", default="", help="A benchmarks.tflite_latency result JSON (--reference=teacher).")
    parser.add_argument("--latency_name", action="append", default=[], metavar="NAME=MODEL",
                        help="The --model name a group has in the --latency run (default: the group's name).")
    parser.add_argument("--results_dir", default=common.RESULTS, help="Where distillation.{json,md,png} go.")
    args = parser.parse_args(argv)
    args.group = {name: value.split(",") for name, value in _pairs(args.group, "group").items()}
    args.tflite = _pairs(args.tflite, "tflite")
    args.latency_name = _pairs(args.latency_name, "latency_name")
    if args.teacher not in args.group:
        raise ValueError(f"--teacher={args.teacher}: not one of the --group names ({', '.join(args.group)})")
    return args


def run_accuracy(model_dir: str) -> dict:
    """Best and last dev accuracy of a training run, its steps and parameter count.

    Raises:
        FileNotFoundError: No evaluation in ``model_dir/metrics``.
    """
    evaluations = []
    for path in glob.glob(os.path.join(model_dir, "metrics", "step_*.json")):
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
        if "val_accuracy" in metrics:
            evaluations.append((int(metrics.get("step", 0)), metrics["val_accuracy"]))
    if not evaluations:
        raise FileNotFoundError(f"{model_dir}: no evaluation in metrics/step_*.json")
    evaluations.sort()
    best_step, best = max(evaluations, key=lambda e: (e[1], -e[0]))
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
        final = json.load(f)
    params = final.get("student_params") or final.get("total_params") or _restored_params(model_dir)
    return {"model_dir": model_dir, "best": best, "best_step": best_step, "final": evaluations[-1][1],
            "final_step": evaluations[-1][0], "params": params}


def _restored_params(model_dir: str) -> int:
    """Parameters of the model a run trained, rebuilt from its ``params.yaml`` and checkpoint."""
    from llm_tf.models.parameters import count_params
    from llm_tf.training.model_dir import restore_trained_model

    return count_params(restore_trained_model(model_dir, "latest").model.weights)


def tflite_summary(directory: str) -> dict:
    """Sizes and accuracies of an ``llm_quantize`` output, and its SavedModel's parameter count."""
    with open(os.path.join(directory, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    out = {"directory": directory, "reference_accuracy": (report.get("reference") or {}).get("accuracy"),
           "variants": {}}
    for v in report.get("variants", []):  # one entry per file: name is <form>_<variant>
        out["variants"][v["name"]] = {k: v.get(k) for k in ("size_bytes", "accuracy", "agreement", "passed")}
    saved_model = report.get("saved_model", "")
    export_info = os.path.join(saved_model, "assets.extra", "llm_tf_export.json") if saved_model else ""
    if export_info and os.path.isfile(export_info):
        with open(export_info, encoding="utf-8") as f:
            out["float_params"] = (json.load(f).get("weights") or {}).get("float_params")
    return out


def collect(args: argparse.Namespace) -> dict:
    """Every group's accuracies, TFLite files and latencies."""
    latency = {}
    if args.latency:
        with open(args.latency, encoding="utf-8") as f:
            latency = json.load(f)
    rows = {}
    for name, dirs in args.group.items():
        runs = [run_accuracy(d) for d in dirs]
        row = {"runs": runs, "seeds": len(runs), "best_median": statistics.median(r["best"] for r in runs),
               "final_median": statistics.median(r["final"] for r in runs), "params": runs[0]["params"]}
        if name in args.tflite:
            row["tflite"] = tflite_summary(args.tflite[name])
            row["params"] = row["params"] or row["tflite"].get("float_params")
        timed = args.latency_name.get(name, name)
        for form_variant, s in ((k, v) for k, v in latency.get("summary", {}).items() if k.startswith(timed + "/")):
            form = form_variant.split("/", 1)[1]
            for variant, values in s.items():
                row.setdefault("latency", {})[f"{form}_{variant}"] = {
                    "p50_ms": values["p50_ms"],
                    "speedup_vs_teacher_float32": (values.get("speedup_vs_reference") or {}).get("median")}
        rows[name] = row
    teacher = rows[args.teacher]
    for row in rows.values():
        row["params_share"] = row["params"] / teacher["params"] if row["params"] and teacher["params"] else None
        row["best_share"] = row["best_median"] / teacher["best_median"]
        row["final_share"] = row["final_median"] / teacher["final_median"]
    return {"teacher": args.teacher, "rows": rows, "latency_file": args.latency,
            "latency_machine": latency.get("machine"), "latency_command": latency.get("command")}


def _pct(x) -> str:
    return f"{100 * x:.2f}%" if x is not None else ""


def markdown(result: dict, command: str) -> str:
    """The results page."""
    lines = ["# Distillation: teacher and students on SST-2 dev", "", f"Command: `{command}`  ",
             f"Latency measured by `{result['latency_command']}`" if result.get("latency_command") else "", "",
             "Accuracy: SST-2 dev (872 sentences), each run's best evaluation (as `best/` keeps) and its last; median "
             "over the seeds, each seed in brackets. Share: of the teacher's median on the same measure. TFLite: "
             f"`{SHIP_FORM}` form, `{SHIP_VARIANT}` unless named; batch-1 p50 invoke latency, speed-up over the "
             "teacher's float32 TFLite in the same rounds.", "",
             "| model | parameters (share) | dev acc. best | dev acc. last | share of teacher (best / last) | "
             f"TFLite {SHIP_VARIANT} size | TFLite {SHIP_VARIANT} acc. | batch-1 p50 ms | vs teacher float32 |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        seeds_best = ", ".join(f"{100 * r['best']:.2f}" for r in row["runs"])
        seeds_final = ", ".join(f"{100 * r['final']:.2f}" for r in row["runs"])
        key = f"{SHIP_FORM}_{SHIP_VARIANT}"
        variant = (row.get("tflite") or {}).get("variants", {}).get(key, {})
        lat = (row.get("latency") or {}).get(key, {})
        size = f"{variant['size_bytes'] / 1e6:.2f} MB" if variant.get("size_bytes") else ""
        speed = f"{lat['speedup_vs_teacher_float32']:.2f}x" if lat.get("speedup_vs_teacher_float32") else ""
        p50 = f"{lat['p50_ms']:.3f}" if lat.get("p50_ms") else ""
        params = f"{row['params']:,} ({_pct(row['params_share'])})" if row["params"] else ""
        lines.append(f"| {name} | {params} | {_pct(row['best_median'])} ({seeds_best}) | {_pct(row['final_median'])} "
                     f"({seeds_final}) | {_pct(row['best_share'])} / {_pct(row['final_share'])} | {size} | "
                     f"{_pct(variant.get('accuracy'))} | {p50} | {speed} |")
    lines += ["", "Every TFLite variant measured:", "", "| model | variant | size | accuracy | agreement with its "
              "SavedModel | batch-1 p50 ms | vs teacher float32 |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        for variant, v in (row.get("tflite") or {}).get("variants", {}).items():
            lat = (row.get("latency") or {}).get(variant, {})
            p50 = f"{lat['p50_ms']:.3f}" if lat.get("p50_ms") else ""
            speed = f"{lat['speedup_vs_teacher_float32']:.2f}x" if lat.get("speedup_vs_teacher_float32") else ""
            lines.append(f"| {name} | {variant} | {v['size_bytes'] / 1e6:.2f} MB | {_pct(v.get('accuracy'))} | "
                         f"{_pct(v.get('agreement'))} | {p50} | {speed} |")
    machine = result.get("latency_machine")
    if machine:
        lines += ["", common.machine_line(machine, f"; TF {machine.get('tensorflow', '?')}")]
    lines += ["", "![accuracy vs latency and size of the TFLite files](distillation.png)", ""]
    return "\n".join(lines)


def chart(result: dict, path: str) -> None:
    """Accuracy against batch-1 latency for every timed TFLite file (tokens form); labels give its size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, row in result["rows"].items():
        variants = (row.get("tflite") or {}).get("variants", {})
        points = [(key, variants[key], lat) for key, lat in (row.get("latency") or {}).items()
                  if key.startswith(SHIP_FORM + "_") and key in variants and lat.get("p50_ms")]
        if not points:
            continue
        xs = [lat["p50_ms"] for _, _, lat in points]
        ys = [100 * v["accuracy"] for _, v, _ in points]
        line, = ax.plot(xs, ys, "o-", label=f"{name} ({row['params'] / 1e6:.2f}M parameters)")
        for (key, v, lat), x, y in zip(points, xs, ys):
            ax.annotate(f"{key.split('_', 1)[1]}, {v['size_bytes'] / 1e6:.1f} MB", (x, y), textcoords="offset points",
                        xytext=(5, 5 if name == result["teacher"] else -11), fontsize=7, color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel(f"batch-1 latency, ms (p50, TFLite {SHIP_FORM} form, log scale)")
    ax.set_ylabel("SST-2 dev accuracy of the file (%)")
    ax.set_title("Teacher vs students: accuracy, size and latency of the TFLite files")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    common.save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Collects the runs and writes the results."""
    args = parse_args(argv)
    command = "python -m benchmarks.distillation_story " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = collect(args)
    result.update(command=command, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    common.write_results("distillation", result, markdown(result, command), args.results_dir)
    chart(result, os.path.join(args.results_dir, "distillation.png"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError) as error:
        print(f"distillation_story: error: {error}", file=sys.stderr)
        sys.exit(1)
