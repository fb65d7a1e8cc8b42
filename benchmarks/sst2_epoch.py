"""One real-data epoch of SST-2 train, each system with its recommended input pipeline.

* ``ours``: ``llm_train`` (a subprocess, as a user runs it) with
  ``configs/sentence_classification/sst2_tiny.yaml`` on the prepared SST-2 directory, length
  bucketing on (``task.data.bucketing=true``: in-graph tokenization in tf.data, batches of
  similar lengths cut to their bucket), one epoch of steps, then the dev evaluation
  (``--mode=train_and_eval``, one loop);
* ``hf``: HF transformers + PyTorch (``benchmarks/peer_workers/hf_sst2_epoch.py`` in the peer
  virtualenv): fast tokenizer over the same ``vocab.txt``, ``DataCollatorWithPadding``
  (dynamic padding), the same tiny architecture, batch size, max length, learning rate,
  warm-up/decay, weight decay and clipping; one epoch, then dev accuracy.

Both read SST-2 train (67,349 sentences) and are scored on SST-2 dev (872): ours from the
prepared directory (``llm_prepare --input=train.tsv --eval_input=dev.tsv``), HF from the TSV
files. The figure is the wall time of each system's whole process (start-up, imports,
tokenization, the epoch, evaluation), plus the in-process breakdown each reports. An epoch
takes minutes, so by default each system runs once (--rounds=1); with more rounds they
alternate (ours, hf, hf, ours, ...). Dev accuracy after one epoch moves by about half a point
with the seed (initialisation, data order, dropout), so ``--seeds=42,43,44`` gives round r
the r-th seed, the same for both systems, and the accuracy compared is the median over them.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.sst2_epoch [--prepared_dir=runs/sst2_real/prepared] [--rounds=1] [--seeds=42]

Results: benchmarks/results/sst2_epoch.{json,md,png}.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import common, peers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "sentence_classification", "sst2_tiny.yaml")


def epoch_steps(prepared_dir: str, batch_size: int) -> int:
    """Full batches in one pass over the prepared train split."""
    with open(os.path.join(prepared_dir, "summary.json"), encoding="utf-8") as f:
        return json.load(f)["counts"]["train"] // batch_size


def run_ours(args, steps: int, work: str, seed: int) -> dict:
    """Runs ``llm_train`` for one epoch + dev eval; returns wall time, accuracy and throughput."""
    model_dir = tempfile.mkdtemp(prefix="ours_", dir=work)
    overrides = ",".join([
        f"task.data.prepared_dir={args.prepared_dir}", "task.data.bucketing=true", f"task.model.size={args.size}",
        f"task.data.seq_length={args.seq_length}", f"task.data.global_batch_size={args.batch_size}",
        f"trainer.optimizer.learning_rate={args.learning_rate}", f"trainer.train_steps={steps}",
        f"trainer.steps_per_loop={steps}", f"task.data.seed={seed}",
    ])
    argv = [os.path.join(os.path.dirname(sys.executable), "llm_train"), "--experiment=sentence_classification",
            "--mode=train_and_eval", f"--model_dir={model_dir}", f"--config_file={CONFIG}",
            f"--params_override={overrides}"]
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"llm_train failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    shutil.rmtree(model_dir, ignore_errors=True)
    return {"wall_s": wall, "dev_accuracy": metrics["val_accuracy"], "steps": metrics["step"],
            "train_examples_per_s": metrics.get("examples_per_s"), "last_loss": metrics.get("loss"),
            "seed": seed, "command": " ".join(argv[1:])}


def run_hf(args, python: str, steps: int, seed: int) -> dict:
    """Runs the HF epoch script in the peer venv; returns wall time and what it reported."""
    argv = [python, peers.worker_script("hf_sst2_epoch.py"), f"--train={args.train_tsv}", f"--dev={args.dev_tsv}",
            f"--vocab={os.path.join(args.prepared_dir, 'tokenizer', 'vocab.txt')}", f"--size={args.size}",
            f"--max_seq_length={args.seq_length}", f"--batch_size={args.batch_size}",
            f"--learning_rate={args.hf_learning_rate or args.learning_rate}", f"--max_steps={steps}",
            f"--seed={seed}"]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": peers.worker_pythonpath()}
    if args.torch_omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.torch_omp_wait_policy
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"HF epoch failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": wall, "seed": seed, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    """Runs the systems (alternating), writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared_dir", default="runs/sst2_real/prepared",
                        help="llm_prepare output of SST-2 (train.tsv, eval_input dev.tsv)")
    parser.add_argument("--train_tsv", default="../shared/data/sst2/train.tsv")
    parser.add_argument("--dev_tsv", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seq_length", type=int, default=64, help="as in sst2_tiny.yaml")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--hf_learning_rate", type=float, default=0.0,
                        help="HF's peak learning rate when it should differ (default: --learning_rate)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seeds", default="42",
                        help="comma-separated; round r uses the r-th (cycling), the same for both systems")
    parser.add_argument("--max_steps", type=int, default=0, help="fewer steps than an epoch (smoke tests)")
    parser.add_argument("--systems", default="ours,hf")
    parser.add_argument("--peer_venv", default="")
    parser.add_argument("--torch_omp_wait_policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY for torch ('' = its default; "
                             "see benchmarks.training_throughput.worker_env)")
    parser.add_argument("--results_dir", default=common.RESULTS)
    args = parser.parse_args()
    for path in (os.path.join(args.prepared_dir, "summary.json"), args.train_tsv, args.dev_tsv):
        if not os.path.isfile(path):
            sys.exit(f"sst2_epoch: {path}: missing (prepare SST-2 first, see the module docstring)")
    systems = args.systems.split(",")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        sys.exit(f"sst2_epoch: --seeds={args.seeds!r}: expected comma-separated integers")
    round_seeds = [seeds[r % len(seeds)] for r in range(args.rounds)]
    steps = epoch_steps(args.prepared_dir, args.batch_size)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    python = peers.ensure_venv(args.peer_venv or None) if "hf" in systems else None
    load_before = common.load_average()
    work = tempfile.mkdtemp(prefix="sst2_epoch_")
    runs: dict[str, list] = {s: [] for s in systems}
    for r, seed in enumerate(round_seeds):
        for system in (systems if r % 2 == 0 else list(reversed(systems))):
            result = run_ours(args, steps, work, seed) if system == "ours" else run_hf(args, python, steps, seed)
            runs[system].append(result)
            print(f"round {r + 1} (seed {seed}) {system}: {result['wall_s']:.1f} s, "
                  f"dev accuracy {result['dev_accuracy']:.4f}",
                  file=sys.stderr)
    machine = common.machine_info()
    machine["load_average_before"] = load_before
    machine["peers"] = peers.install_record(args.peer_venv or None).get("versions", {})
    summary = {s: {"wall_s": common.spread([x["wall_s"] for x in v]),
                   "dev_accuracy": common.spread([x["dev_accuracy"] for x in v]), "runs": v} for s, v in runs.items()}
    report = {"benchmark": "sst2_epoch", "command": "python -m benchmarks.sst2_epoch " + " ".join(sys.argv[1:]),
              "machine": machine, "steps": steps, "batch_size": args.batch_size, "seq_length": args.seq_length,
              "size": args.size, "learning_rate": args.learning_rate,
              "hf_learning_rate": args.hf_learning_rate or args.learning_rate, "rounds": args.rounds,
              "seeds": round_seeds, "systems": summary,
              "torch_omp_wait_policy": args.torch_omp_wait_policy or "(torch default)"}
    if "ours" in runs and "hf" in runs:
        speedup = common.ratio_summary([x["wall_s"] for x in runs["hf"]], [x["wall_s"] for x in runs["ours"]])
        accuracy_gap = summary["ours"]["dev_accuracy"]["median"] - summary["hf"]["dev_accuracy"]["median"]
        report["ours_speedup"] = speedup
        report["target"] = {"what": "ours >= 2x faster (HF wall / ours wall) at equal or better dev accuracy",
                            "speedup": speedup["median"], "accuracy_gap": accuracy_gap,
                            "met": speedup["median"] >= 2.0 and accuracy_gap >= 0}
    common.write_results("sst2_epoch", report, markdown(report), args.results_dir)
    plot(report, os.path.join(args.results_dir, "sst2_epoch.png"))


def markdown(report: dict) -> str:
    """Table of wall times, breakdowns and accuracy."""
    m = report["machine"]
    lines = [
        "# One SST-2 epoch (real data): llm-tf vs HF transformers (PyTorch)", "",
        f"`{report['command']}`", "",
        common.machine_line(m, f"; TF {m['tensorflow']}" + common.peer_version_text(m, "torch", "transformers")),
        f"{report['size']} encoder, {report['steps']} steps of batch {report['batch_size']} "
        f"(one epoch of SST-2 train), max length {report['seq_length']}, lr {report['learning_rate']} "
        f"(HF {report['hf_learning_rate']}; 10% warm-up, linear decay), AdamW wd 0.01, "
        f"clip 1.0; dev = SST-2 dev (872); torch with OMP_WAIT_POLICY={report['torch_omp_wait_policy']}. "
        f"{report['rounds']} round(s) per system, "
        f"seeds {', '.join(str(x) for x in report.get('seeds', [42]))} (both systems use a round's seed)"
        + (" (an epoch takes minutes: one round each, so no spread)" if report["rounds"] == 1 else "") + ".", "",
        "| system | input pipeline | process wall s (median) | train examples/s | dev accuracy |",
        "|---|---|---|---|---|",
    ]
    pipelines = {"ours": "llm_train, in-graph tokenizer in tf.data, length bucketing",
                 "hf": "fast tokenizer + DataCollatorWithPadding (dynamic padding), plain loop"}
    for system, s in report["systems"].items():
        rates = [r.get("train_examples_per_s") for r in s["runs"] if r.get("train_examples_per_s")]
        rate = f"{sorted(rates)[len(rates) // 2]:.0f}" if rates else "-"
        lines.append(f"| {system} | {pipelines.get(system, '')} | {s['wall_s']['median']:.1f} | {rate} | "
                     f"{s['dev_accuracy']['median']:.4f} |")
    hf = report["systems"].get("hf")
    if hf:
        last = hf["runs"][-1]
        lines += ["", f"HF in-process breakdown (last run): imports {last['import_s']:.1f} s, tokenization "
                  f"{last['tokenize_s']:.1f} s, training {last['train_s']:.1f} s, dev eval {last['eval_s']:.1f} s."]
    if len(report["systems"]) > 1 and report["rounds"] > 1:
        names = list(report["systems"])
        lines += ["", "| round | seed | " + " | ".join(f"{n} wall s | {n} dev accuracy" for n in names) + " |",
                  "|---" * (2 + 2 * len(names)) + "|"]
        for r in range(report["rounds"]):
            cells = [f"{report['systems'][n]['runs'][r]['wall_s']:.1f} | "
                     f"{report['systems'][n]['runs'][r]['dev_accuracy']:.4f}" for n in names]
            lines.append(f"| {r + 1} | {report['systems'][names[0]]['runs'][r].get('seed', '-')} | "
                         + " | ".join(cells) + " |")
    if "target" in report:
        t = report["target"]
        lines += ["", f"Speed-up (HF wall / ours wall): **{t['speedup']:.2f}x**, median dev accuracy ours - HF: "
                  f"{100 * t['accuracy_gap']:+.2f} points (target >= 2x at equal or better accuracy: "
                  f"{'met' if t['met'] else 'NOT met'})."]
    lines += ["", "![sst2 epoch](sst2_epoch.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Bars of process wall time, annotated with dev accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(report["systems"])
    walls = [report["systems"][s]["wall_s"]["median"] for s in systems]
    fig, ax = plt.subplots(figsize=(5, 4))
    bars = ax.bar(systems, walls, color=["tab:blue" if s == "ours" else "tab:green" for s in systems])
    for bar, s in zip(bars, systems):
        ax.annotate(f"dev acc {report['systems'][s]['dev_accuracy']['median']:.3f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("process wall time, s")
    ax.set_title(f"One SST-2 epoch, {report['size']} encoder")
    common.save_png(fig, path)


if __name__ == "__main__":
    main()
