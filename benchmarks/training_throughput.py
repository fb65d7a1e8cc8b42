"""Training throughput: llm-tf vs keras-hub ``fit`` vs HF ``BertForSequenceClassification`` + PyTorch.

Fine-tunes a 2-class BERT classifier at each --sizes (tiny L2/H128/A2, small L4/H512/A8),
--seq_length 128, --batch_size 32, on identical synthetic token batches (one seed, one
vocabulary size, full-length sequences), and reports examples/s and tokens/s for:

  * ``ours_fp32``, ``ours_bf16`` (``trainer.mixed_precision=mixed_bfloat16``), each also
    with ``trainer.jit_compile=true`` (``_xla``): our Trainer, model and AdamW, as llm_train
    builds them (``benchmarks/peer_workers/train_tf.py``);
  * ``keras_hub_fp32``, ``keras_hub_bf16``: keras-hub ``BertTextClassifier.compile()``
    defaults, then ``fit``;
  * ``hf_fp32``, ``hf_bf16``: HF transformers + PyTorch, plain loop with AdamW, bf16 under
    ``torch.autocast("cpu")`` (``benchmarks/peer_workers/hf_train.py``, peer virtualenv).

Every configuration runs in its own long-lived worker process; rounds are interleaved (each
round runs every configuration for --steps steps, alternating direction) and ratios are
taken per round. An estimated MFU divides the model's matmul FLOPs (3x forward: weights and
attention scores, see :func:`train_flops_per_example`) per second by the best large-matmul
rate this machine gave in TF or torch for that precision (measured in the same run).

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.training_throughput [--sizes=tiny,small] [--rounds=3] \
        [--steps=tiny:20,small:6] [--configs=ours_fp32,...]

Results: benchmarks/results/training_throughput.{json,md,png}.
"""

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np

from benchmarks import common, peers

SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "base": (12, 768, 12)}
CONFIGS = ("ours_fp32", "ours_fp32_xla", "ours_bf16", "ours_bf16_xla", "ours_fp32_onednn", "ours_bf16_onednn",
           "keras_hub_fp32", "keras_hub_bf16", "keras_hub_fp32_onednn", "hf_fp32", "hf_bf16")
#: Configurations measured by default (the ``_onednn`` ones are opt-in: --configs).
DEFAULT_CONFIGS = tuple(c for c in CONFIGS if not c.endswith("_onednn"))
#: Ratios reported (ours vs the peer, same precision); the best ours setting is also compared.
TARGETS = {"tiny": 1.5, "small": 1.2}


def train_flops_per_example(size: str, seq_length: int, num_classes: int = 2) -> float:
    """Matmul FLOPs of one training example: 3x the forward pass (forward + two backward matmuls).

    Forward per layer and token: Q, K, V and output projections (4 * 2H^2), the feed-forward
    (2 * 2 * H * 4H) and attention scores and mixing (2 * 2 * S * H); plus the pooler and the
    classifier per example. Embedding lookups, softmax, layer norms and the optimizer are
    not counted (they are not matmuls).
    """
    layers, hidden, _ = SIZES[size]
    intermediate = 4 * hidden
    per_token = layers * (8 * hidden * hidden + 4 * hidden * intermediate + 4 * seq_length * hidden)
    return 3.0 * (seq_length * per_token + 2 * hidden * hidden + 2 * hidden * num_classes)


def synthetic_batches(path: str, count: int, batch_size: int, seq_length: int, vocab_size: int, seed: int) -> str:
    """Writes ``count`` full-length batches of random token ids (and 0/1 labels) to an .npz."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocab_size, size=(count, batch_size, seq_length), dtype=np.int32)
    token_ids[:, :, 0] = 2  # [CLS]
    token_ids[:, :, -1] = 3  # [SEP]
    np.savez(path, token_ids=token_ids, segment_ids=np.zeros_like(token_ids), padding_mask=np.ones_like(token_ids),
             labels=rng.integers(0, 2, size=(count, batch_size), dtype=np.int32))
    return path


def worker_env(config: str, omp_wait_policy: str) -> dict:
    """Extra environment of a configuration's worker: oneDNN for ``*_onednn``, OMP_WAIT_POLICY for torch.

    TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512/AMX; ``_onednn``
    configurations set ``TF_ENABLE_ONEDNN_OPTS=1`` (a switch any TF user can set).

    With its default (spinning) OpenMP threads, torch loses most of its speed when other
    processes share the cores (measured here: 3.9 vs 26 examples/s for tiny at a load average
    of 12 on 2 cores), so on a shared machine the torch workers get ``PASSIVE``.
    """
    if config.endswith("_onednn"):
        return {"TF_ENABLE_ONEDNN_OPTS": "1"}
    return {"OMP_WAIT_POLICY": omp_wait_policy} if config.startswith("hf_") and omp_wait_policy else {}


def worker_argv(config: str, size: str, batches: str, vocab_size: int, peer_python: str | None) -> list[str]:
    """Command line of the worker for one configuration."""
    precision = "bf16" if "bf16" in config else "fp32"
    common_flags = [f"--batches={batches}", f"--size={size}", f"--precision={precision}", f"--vocab_size={vocab_size}"]
    if config.startswith("hf_"):
        return [peer_python, peers.worker_script("hf_train.py"), *common_flags]
    system = "ours" if config.startswith("ours") else "keras_hub"
    return [peers.project_python(), peers.worker_script("train_tf.py"), f"--system={system}", *common_flags] + (
        ["--jit"] if "_xla" in config else [])


def measure_peaks(peer_python: str | None, n: int, rounds: int, log_dir: str, torch_env: dict | None = None) -> dict:
    """Best large-matmul GFLOP/s per framework and dtype, interleaved."""
    workers = {"tf": peers.Worker([peers.project_python(), peers.worker_script("train_tf.py"), "--system=peak"],
                                  "peak_tf", log_dir=log_dir)}
    if peer_python:
        workers["torch"] = peers.Worker([peer_python, peers.worker_script("hf_train.py"), "--peak"], "peak_torch",
                                        env=torch_env, log_dir=log_dir)
    try:
        for worker in workers.values():
            worker.start()
        plan = [(f"{fw}/{dtype}", w, {"op": "peak", "n": n, "dtype": dtype, "repeats": 3})
                for fw, w in workers.items() for dtype in ("float32", "bfloat16")]
        replies = peers.interleave(plan, rounds, warmup=0)
    finally:
        for worker in workers.values():
            worker.close()
    peaks = {name: max(r["best_gflops"] for r in runs) for name, runs in replies.items()}
    return {"n": n, "gflops": peaks,
            "best": {dtype: max(v for k, v in peaks.items() if k.endswith(dtype)) for dtype in ("float32", "bfloat16")}}


def parse_skip(text: str) -> set[tuple[str, str]]:
    """``small:hf_bf16,tiny:ours_fp32_xla`` -> {("small", "hf_bf16"), ...}.

    Raises:
        SystemExit: An item is not ``size:config`` with a known size and config.
    """
    pairs = set()
    for item in filter(None, text.split(",")):
        size, _, config = item.partition(":")
        if size not in SIZES or config not in CONFIGS:
            raise SystemExit(f"--skip: '{item}' is not size:config "
                             f"(sizes: {', '.join(SIZES)}; configs: {', '.join(CONFIGS)})")
        pairs.add((size, config))
    return pairs


def parse_steps(text: str, sizes: list[str]) -> dict:
    """``tiny:20,small:6`` -> {"tiny": 20, "small": 6}; a bare number applies to every size."""
    if ":" not in text:
        return {s: int(text) for s in sizes}
    steps = {k: int(v) for k, v in (item.split(":") for item in text.split(","))}
    missing = [s for s in sizes if s not in steps]
    if missing:
        raise SystemExit(f"--steps: no step count for size(s) {', '.join(missing)}")
    return steps


def main() -> None:
    """Measures every size and configuration, interleaved; writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"any of {', '.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", default="tiny:20,small:6", help="training steps per round, per size")
    parser.add_argument("--warmup_steps", type=int, default=3, help="untimed steps before the rounds (compilation)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="small:hf_bf16",
                        help="size:config pairs not measured (default: HF bf16 at small, whose bf16 matmuls fall back "
                             "to a reference kernel on CPUs without AVX512-BF16: minutes per step); '' measures all")
    parser.add_argument("--peak_n", type=int, default=1024, help="matrix size of the peak-FLOP/s matmul")
    parser.add_argument("--peer_venv", default="", help="peer virtualenv (default benchmarks/.peer_venv)")
    parser.add_argument("--results_dir", default=common.RESULTS)
    parser.add_argument("--torch_omp_wait_policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY of the torch workers ('' = torch's default, spinning threads)")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    configs = args.configs.split(",")
    bad = [s for s in sizes if s not in SIZES] + [c for c in configs if c not in CONFIGS]
    if bad:
        parser.error(f"unknown size/config {', '.join(bad)} (sizes: {', '.join(SIZES)}; configs: {', '.join(CONFIGS)})")
    steps = parse_steps(args.steps, sizes)
    skip = parse_skip(args.skip)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    load_before = common.load_average()
    peer_python = None
    if any(c.startswith("hf_") for c in configs):
        try:
            peer_python = peers.ensure_venv(args.peer_venv or None)
        except Exception as e:  # ConfigError: one line
            sys.exit(f"training_throughput: {e}")
    work = tempfile.mkdtemp(prefix="training_bench_")
    batches = synthetic_batches(os.path.join(work, "batches.npz"), 8, args.batch_size, args.seq_length,
                                args.vocab_size, args.seed)
    peak = measure_peaks(peer_python, args.peak_n, 2, work, worker_env("hf_", args.torch_omp_wait_policy))
    results: dict = {}
    for size in sizes:
        measured = [c for c in configs if (size, c) not in skip]
        workers = {c: peers.Worker(worker_argv(c, size, batches, args.vocab_size, peer_python), f"{size}_{c}",
                                   env=worker_env(c, args.torch_omp_wait_policy), log_dir=work) for c in measured}
        try:
            ready = {}
            for c, w in workers.items():  # one at a time: TF start-up is CPU heavy
                ready[c] = w.start()
                print(f"{size} {c} ready: {ready[c]}", file=sys.stderr)
            for c, w in workers.items():
                w.request({"op": "round", "steps": args.warmup_steps})
            plan = [(c, workers[c], {"op": "round", "steps": steps[size]}) for c in measured]
            replies = peers.interleave(plan, args.rounds, warmup=0)
        finally:
            for w in workers.values():
                w.close()
        results[size] = summarize(size, replies, ready, args, peak)
    machine = common.machine_info()
    machine["load_average_before"] = load_before
    peer_install = peers.install_record(args.peer_venv or None)
    machine["peers"] = peer_install.get("versions", {})
    report = {
        "benchmark": "training_throughput",
        "command": "python -m benchmarks.training_throughput " + " ".join(sys.argv[1:]),
        "machine": machine, "batch_size": args.batch_size, "seq_length": args.seq_length,
        "vocab_size": args.vocab_size, "rounds": args.rounds, "steps_per_round": steps,
        "warmup_steps": args.warmup_steps, "matmul_peak": peak, "sizes": results,
        "torch_omp_wait_policy": args.torch_omp_wait_policy or "(torch default)",
        "skipped": sorted(f"{size}:{c}" for size, c in skip if size in sizes and c in configs),
        "peer_install": peer_install,
    }
    common.write_results("training_throughput", report, markdown(report), args.results_dir)
    plot(report, os.path.join(args.results_dir, "training_throughput.png"))


def summarize(size: str, replies: dict, ready: dict, args, peak: dict) -> dict:
    """Rates, MFU and per-round ratios of one size."""
    flops = train_flops_per_example(size, args.seq_length)
    out = {"flops_per_example": flops, "configs": {}, "ratios": {}}
    for c, runs in replies.items():
        rates = [r["steps"] * args.batch_size / r["seconds"] for r in runs]
        dtype = "bfloat16" if "bf16" in c else "float32"
        out["configs"][c] = {
            "examples_per_s": common.spread(rates),
            "tokens_per_s": common.spread([x * args.seq_length for x in rates]),
            "mfu": statistics.median(rates) * flops / (peak["best"][dtype] * 1e9),
            "last_loss": runs[-1]["loss"],
            # TF workers: the fit call's fixed cost beyond its training loop (see peer_workers/train_tf.py)
            "fit_call_overhead_s": (common.spread([r["call_seconds"] - r["seconds"] for r in runs])
                                    if "call_seconds" in runs[0] else None),
            "worker": ready[c],
        }
    for precision in ("fp32", "bf16"):
        hf = f"hf_{precision}"
        if hf not in replies:
            continue
        hf_rates = out["configs"][hf]["examples_per_s"]["runs"]
        for c in replies:
            if (c.startswith("ours") or c.startswith("keras_hub")) and precision in c:
                out["ratios"][f"{c} / {hf}"] = common.ratio_summary(out["configs"][c]["examples_per_s"]["runs"],
                                                                    hf_rates)
        ours = [c for c in replies if c.startswith("ours") and precision in c]
        if ours:
            best = max(ours, key=lambda c: out["configs"][c]["examples_per_s"]["median"])
            ratio = out["ratios"][f"{best} / {hf}"]["median"]
            target = TARGETS.get(size)
            out[f"best_ours_{precision}"] = {"config": best, "vs_hf": ratio, "target": target,
                                             "met": None if target is None else ratio >= target}
    return out


def markdown(report: dict) -> str:
    """Tables per size, ratios and targets."""
    m = report["machine"]
    peak = report["matmul_peak"]
    lines = [
        "# Training throughput: llm-tf vs keras-hub vs HF transformers (PyTorch)", "",
        f"`{report['command']}`", "",
        common.machine_line(m, f"; TF {m['tensorflow']}" + common.peer_version_text(m, "torch", "transformers")),
        f"Classifier fine-tuning, batch {report['batch_size']}, seq {report['seq_length']} (all tokens real), "
        f"vocabulary {report['vocab_size']}, identical synthetic batches; {report['rounds']} interleaved rounds of "
        f"{report['steps_per_round']} steps per configuration after {report['warmup_steps']} warm-up steps, every "
        f"configuration in its own process; torch workers with OMP_WAIT_POLICY={report['torch_omp_wait_policy']}.  ",
        "Timed: the training loop of each round (TF systems: the epoch inside `fit`, first batch to the last "
        "step's results; HF: its Python loop). A `fit` call also has a fixed cost outside its loop, shown as "
        "*fit call overhead* (mostly tf.data's autotuner thread joined when the iterator is destroyed; paid once "
        "per `llm_train` run, not per step).  ",
        f"Matmul peak (n={peak['n']}, best GFLOP/s): {', '.join(f'{k} {v:.1f}' for k, v in peak['gflops'].items())}. "
        "MFU = model matmul FLOP/s / best peak of that precision.", "",
    ]
    if report["skipped"]:
        lines += [f"Not measured: {', '.join(report['skipped'])} (see --skip).", ""]
    for size, res in report["sizes"].items():
        layers, hidden, heads = SIZES[size]
        lines += [f"## {size} (L{layers}/H{hidden}/A{heads}), {res['flops_per_example'] / 1e9:.2f} GFLOP per example",
                  "",
                  "| configuration | examples/s (median) | min | max | tokens/s | est. MFU | fit call overhead s |",
                  "|---|---|---|---|---|---|---|"]
        for c, f in res["configs"].items():
            e = f["examples_per_s"]
            overhead = f.get("fit_call_overhead_s")
            lines.append(f"| {c} | {e['median']:.1f} | {e['min']:.1f} | {e['max']:.1f} | "
                         f"{f['tokens_per_s']['median']:,.0f} | {100 * f['mfu']:.1f}% | "
                         f"{'' if overhead is None else format(overhead['median'], '.2f')} |")
        lines += ["", "| ratio (per round) | median | min | max |", "|---|---|---|---|"]
        for name, r in res["ratios"].items():
            lines.append(f"| {name} | {r['median']:.2f}x | {r['min']:.2f}x | {r['max']:.2f}x |")
        for precision in ("fp32", "bf16"):
            best = res.get(f"best_ours_{precision}")
            if best:
                verdict = ("" if best["target"] is None
                           else f" (target >= {best['target']}x: {'met' if best['met'] else 'NOT met'})")
                lines.append(f"\nBest ours in {precision}: `{best['config']}`, **{best['vs_hf']:.2f}x** HF{verdict}.")
        lines.append("")
    lines += ["![training throughput](training_throughput.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Grouped bars of median examples/s per configuration, one panel per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(report["sizes"])
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        configs = report["sizes"][size]["configs"]
        names = list(configs)
        medians = [configs[n]["examples_per_s"]["median"] for n in names]
        err = [[m - configs[n]["examples_per_s"]["min"] for n, m in zip(names, medians)],
               [configs[n]["examples_per_s"]["max"] - m for n, m in zip(names, medians)]]
        colors = ["tab:blue" if n.startswith("ours") else "tab:orange" if n.startswith("keras") else "tab:green"
                  for n in names]
        ax.bar(range(len(names)), medians, yerr=err, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("examples / s (median of rounds)")
        ax.set_title(f"{size}: batch {report['batch_size']}, seq {report['seq_length']}")
    common.save_png(fig, path)


if __name__ == "__main__":
    main()
