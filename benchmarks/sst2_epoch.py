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

The pre-trained model (issue 24 §1): ``--preset=all_minilm_l6_v2`` fine-tunes all-MiniLM-L6-v2
on both sides from the same Hugging Face files: ours with ``configs/sentence_classification/
sst2_minilm.yaml`` (its ``init_preset``; FGM off, so both do one forward/backward a step) on an
SST-2 directory prepared with the checkpoint's vocabulary, HF with
``BertForSequenceClassification.from_pretrained`` and the directory's fast tokenizer. Same batch
size, learning rate, 6% warm-up and linear decay, weight decay, clipping. ``--systems`` then
names precisions too: ``ours_fp32``, ``ours_bf16`` (``trainer.mixed_precision=mixed_bfloat16``),
``hf_fp32``, ``hf_bf16`` (``torch.autocast`` bfloat16); ``ours``/``hf`` mean fp32.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.sst2_epoch [--prepared_dir=runs/sst2_real/prepared] [--rounds=1] [--seeds=42]
    python -m benchmarks.sst2_epoch --preset=all_minilm_l6_v2 --prepared_dir=prepared/sst2_minilm \
        --learning_rate=5e-5 --systems=ours_fp32,hf_fp32,ours_bf16,hf_bf16 --name=sst2_epoch_minilm

Results: benchmarks/results/<--name>.{json,md,png} (default sst2_epoch).
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
#: The recipe of the pre-trained model (--preset): its init_preset is replaced by --preset.
PRESET_CONFIG = os.path.join(ROOT, "configs", "sentence_classification", "sst2_minilm.yaml")
#: Accuracies this close are equal: ours is Keras' float32 mean, HF's a float64 count ratio (same count, 1e-8 apart).
ACCURACY_TOLERANCE = 1e-6
#: --warmup_fraction's default: sst2_tiny.yaml's 10%, sst2_minilm.yaml's 6%.
WARMUP = {False: 0.1, True: 0.06}


def split_system(name: str) -> tuple[str, str]:
    """(``ours`` or ``hf``, ``fp32`` or ``bf16``) of a system name such as ``ours_bf16``; bare names are fp32.

    Raises:
        ValueError: Not one of ours, hf, ours_fp32, ours_bf16, hf_fp32, hf_bf16.
    """
    stack, separator, precision = name.partition("_")
    precision = precision or ("" if separator else "fp32")
    if stack not in ("ours", "hf") or precision not in ("fp32", "bf16"):
        raise ValueError(f"unknown system {name!r} (expected ours, hf, ours_fp32, ours_bf16, hf_fp32, hf_bf16)")
    return stack, precision


def epoch_steps(prepared_dir: str, batch_size: int) -> int:
    """Full batches in one pass over the prepared train split."""
    with open(os.path.join(prepared_dir, "summary.json"), encoding="utf-8") as f:
        return json.load(f)["counts"]["train"] // batch_size


def run_ours(args, steps: int, work: str, seed: int, precision: str = "fp32") -> dict:
    """Runs ``llm_train`` for one epoch + dev eval; returns wall time, accuracy and throughput."""
    model_dir = tempfile.mkdtemp(prefix="ours_", dir=work)
    overrides = [
        f"task.data.prepared_dir={args.prepared_dir}", "task.data.bucketing=true",
        f"task.data.seq_length={args.seq_length}", f"task.data.global_batch_size={args.batch_size}",
        f"trainer.optimizer.learning_rate={args.learning_rate}", f"trainer.train_steps={steps}",
        f"trainer.steps_per_loop={steps}", f"task.data.seed={seed}",
        f"trainer.optimizer.warmup_fraction={args.warmup_fraction}",
        f"trainer.mixed_precision={'mixed_bfloat16' if precision == 'bf16' else 'float32'}",
    ]
    if args.preset:  # the checkpoint's recipe, plain fine-tuning (one forward/backward a step, as HF)
        overrides += [f"task.init_preset={args.preset}", "trainer.fgm_epsilon=0.0"]
    else:
        overrides.append(f"task.model.size={args.size}")
    argv = [os.path.join(os.path.dirname(sys.executable), "llm_train"), "--experiment=sentence_classification",
            "--mode=train_and_eval", f"--model_dir={model_dir}",
            f"--config_file={PRESET_CONFIG if args.preset else CONFIG}", f"--params_override={','.join(overrides)}"]
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
            "seed": seed, "precision": precision, "command": " ".join(argv[1:])}


def run_hf(args, python: str, steps: int, seed: int, precision: str = "fp32") -> dict:
    """Runs the HF epoch script in the peer venv; returns wall time and what it reported."""
    argv = [python, peers.worker_script("hf_sst2_epoch.py"), f"--train={args.train_tsv}", f"--dev={args.dev_tsv}",
            f"--max_seq_length={args.seq_length}", f"--batch_size={args.batch_size}",
            f"--learning_rate={args.hf_learning_rate or args.learning_rate}", f"--max_steps={steps}",
            f"--seed={seed}", f"--warmup_fraction={args.warmup_fraction}"]
    if args.preset:
        from llm_tf.models import presets

        argv.append(f"--model_dir={presets.open_preset(args.preset).directory}")
    else:
        argv += [f"--vocab={os.path.join(args.prepared_dir, 'tokenizer', 'vocab.txt')}", f"--size={args.size}"]
    if precision == "bf16":
        argv.append("--bf16")
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": peers.worker_pythonpath()}
    if args.torch_omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.torch_omp_wait_policy
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"HF epoch failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": wall, "seed": seed, "precision": precision, **json.loads(out.stdout.strip().splitlines()[-1])}


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
    parser.add_argument("--preset", default="",
                        help="fine-tune this pre-trained checkpoint on both sides (e.g. all_minilm_l6_v2); "
                             "--prepared_dir must be prepared with its vocabulary")
    parser.add_argument("--warmup_fraction", type=float, default=-1.0,
                        help="linear warm-up share of the steps (default: 0.1, or 0.06 with --preset)")
    parser.add_argument("--name", default="sst2_epoch", help="results file name")
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
        kinds = {name: split_system(name) for name in systems}
    except ValueError as e:
        sys.exit(f"sst2_epoch: --systems: {e}")
    if args.warmup_fraction < 0:
        args.warmup_fraction = WARMUP[bool(args.preset)]
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        sys.exit(f"sst2_epoch: --seeds={args.seeds!r}: expected comma-separated integers")
    round_seeds = [seeds[r % len(seeds)] for r in range(args.rounds)]
    steps = epoch_steps(args.prepared_dir, args.batch_size)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    python = peers.ensure_venv(args.peer_venv or None) if any(k[0] == "hf" for k in kinds.values()) else None
    load_before = common.load_average()
    work = tempfile.mkdtemp(prefix="sst2_epoch_")
    runs: dict[str, list] = {s: [] for s in systems}
    for r, seed in enumerate(round_seeds):
        for system in (systems if r % 2 == 0 else list(reversed(systems))):
            stack, precision = kinds[system]
            result = (run_ours(args, steps, work, seed, precision) if stack == "ours"
                      else run_hf(args, python, steps, seed, precision))
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
              "size": args.preset or args.size, "preset": args.preset, "warmup_fraction": args.warmup_fraction,
              "name": args.name,
              "learning_rate": args.learning_rate,
              "hf_learning_rate": args.hf_learning_rate or args.learning_rate, "rounds": args.rounds,
              "seeds": round_seeds, "systems": summary,
              "torch_omp_wait_policy": args.torch_omp_wait_policy or "(torch default)"}
    report.update(targets(runs, summary, kinds, 1.5 if args.preset else 2.0))
    common.write_results(args.name, report, markdown(report), args.results_dir)
    plot(report, os.path.join(args.results_dir, f"{args.name}.png"))


def targets(runs: dict, summary: dict, kinds: dict, ratio: float) -> dict:
    """The fp32 race (ours vs HF at fp32) and the best of ours vs the best of HF (any precision).

    Args:
        runs: System -> its runs (wall times, one per round).
        summary: System -> medians.
        kinds: System -> (stack, precision).
        ratio: The speed-up the target asks for (HF wall / ours wall).

    Returns:
        ``ours_speedup`` and ``target`` (fp32), and ``best_target`` when there are several precisions.
    """
    out: dict = {}
    fp32 = {stack: name for name, (stack, precision) in kinds.items() if precision == "fp32"}
    if "ours" in fp32 and "hf" in fp32:
        ours, hf = fp32["ours"], fp32["hf"]
        speedup = common.ratio_summary([x["wall_s"] for x in runs[hf]], [x["wall_s"] for x in runs[ours]])
        accuracy_gap = summary[ours]["dev_accuracy"]["median"] - summary[hf]["dev_accuracy"]["median"]
        out["ours_speedup"] = speedup
        out["target"] = {"what": f"{ours} >= {ratio}x faster than {hf} (HF wall / ours wall) at equal or better "
                                 "dev accuracy", "speedup": speedup["median"], "accuracy_gap": accuracy_gap,
                         "ratio": ratio, "met": speedup["median"] >= ratio and accuracy_gap >= -ACCURACY_TOLERANCE}
    best = {}
    for stack in ("ours", "hf"):
        names = [n for n, k in kinds.items() if k[0] == stack]
        if names:
            best[stack] = min(names, key=lambda n: summary[n]["wall_s"]["median"])
    if len(best) == 2 and len(kinds) > 2:
        speedup = common.ratio_summary([x["wall_s"] for x in runs[best["hf"]]],
                                       [x["wall_s"] for x in runs[best["ours"]]])
        out["best_target"] = {"what": f"best of ours ({best['ours']}) >= {ratio}x the best of HF ({best['hf']})",
                              "speedup": speedup["median"], "ratio": ratio, "met": speedup["median"] >= ratio,
                              "accuracy_gap": summary[best["ours"]]["dev_accuracy"]["median"]
                              - summary[best["hf"]]["dev_accuracy"]["median"]}
    return out


def markdown(report: dict) -> str:
    """Table of wall times, breakdowns and accuracy."""
    m = report["machine"]
    lines = [
        "# One SST-2 epoch (real data): llm-tf vs HF transformers (PyTorch)", "",
        f"`{report['command']}`", "",
        common.machine_line(m, f"; TF {m['tensorflow']}" + common.peer_version_text(m, "torch", "transformers")),
        (f"pre-trained {report['preset']} (the same Hugging Face files on both sides, a new classification head; "
         "ours: sst2_minilm.yaml without FGM)" if report.get("preset") else f"{report['size']} encoder")
        + f", {report['steps']} steps of batch {report['batch_size']} "
        f"(one epoch of SST-2 train), max length {report['seq_length']}, lr {report['learning_rate']} "
        f"(HF {report['hf_learning_rate']}; {100 * report.get('warmup_fraction', 0.1):.0f}% warm-up, linear decay), "
        "AdamW wd 0.01, "
        f"clip 1.0; dev = SST-2 dev (872); torch with OMP_WAIT_POLICY={report['torch_omp_wait_policy']}. "
        f"{report['rounds']} round(s) per system, "
        f"seeds {', '.join(str(x) for x in report.get('seeds', [42]))} (both systems use a round's seed)"
        + (" (an epoch takes minutes: one round each, so no spread)" if report["rounds"] == 1 else "") + ".", "",
        "| system | input pipeline | process wall s (median) | train examples/s | dev accuracy |",
        "|---|---|---|---|---|",
    ]
    pipelines = {"ours": "llm_train, in-graph tokenizer in tf.data, length bucketing",
                 "hf": "fast tokenizer + DataCollatorWithPadding (dynamic padding), plain loop"}
    precisions = {"fp32": "", "bf16": " (bf16: mixed_bfloat16 / torch.autocast)"}
    for system, s in report["systems"].items():
        stack, precision = split_system(system)
        rates = [r.get("train_examples_per_s") for r in s["runs"] if r.get("train_examples_per_s")]
        rate = f"{sorted(rates)[len(rates) // 2]:.0f}" if rates else "-"
        lines.append(f"| {system} | {pipelines[stack]}{precisions[precision]} | {s['wall_s']['median']:.1f} | {rate} | "
                     f"{s['dev_accuracy']['median']:.4f} |")
    for system, s in report["systems"].items():
        if split_system(system)[0] == "hf":
            last = s["runs"][-1]
            lines += ["", f"{system} in-process breakdown (last run): imports {last['import_s']:.1f} s, tokenization "
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
        gap = 0.0 if abs(t["accuracy_gap"]) < ACCURACY_TOLERANCE else t["accuracy_gap"]
        lines += ["", f"Speed-up at fp32 (HF wall / ours wall): **{t['speedup']:.2f}x**, median dev accuracy "
                  f"ours - HF: {100 * gap:+.2f} points (target >= {t.get('ratio', 2.0)}x at equal or "
                  f"better accuracy: {'met' if t['met'] else 'NOT met'})."]
    if "best_target" in report:
        t = report["best_target"]
        lines += ["", f"Best of ours vs best of HF: {t['what']}: **{t['speedup']:.2f}x** "
                  f"({'met' if t['met'] else 'NOT met'}; dev accuracy {100 * t['accuracy_gap']:+.2f} points)."]
    lines += ["", f"![sst2 epoch]({report.get('name', 'sst2_epoch')}.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Bars of process wall time, annotated with dev accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(report["systems"])
    walls = [report["systems"][s]["wall_s"]["median"] for s in systems]
    fig, ax = plt.subplots(figsize=(5, 4))
    bars = ax.bar(systems, walls, color=["tab:blue" if s.startswith("ours") else "tab:green" for s in systems])
    for bar, s in zip(bars, systems):
        ax.annotate(f"dev acc {report['systems'][s]['dev_accuracy']['median']:.3f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("process wall time, s")
    ax.set_title(f"One SST-2 epoch, {report['size']} encoder")
    common.save_png(fig, path)


if __name__ == "__main__":
    main()
