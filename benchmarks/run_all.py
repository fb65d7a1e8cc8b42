"""Runs every side-by-side benchmark, one after another, each as its own command.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.run_all [--only=tokenizer_throughput,training_throughput,sst2_epoch] \
        [--quick] [--results_dir=benchmarks/results] [--serving_model_dir=runs/sst2_real/tiny]

``--quick`` runs short settings (a smoke test: numbers are not meaningful) into a temporary
results directory unless --results_dir is given. The serving benchmark runs only with
--serving_model_dir, and not with --quick. Exit code: non-zero if any benchmark failed (the others still run).
"""

import argparse
import os
import subprocess
import sys
import tempfile

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Benchmark modules and their flags: full settings, quick (smoke) settings.
BENCHMARKS = {
    "tokenizer_throughput": ([], ["--rounds=1", "--tflite_sentences=1024", "--agreement_sentences=200"]),
    "training_throughput": ([], ["--sizes=tiny", "--rounds=1", "--steps=2", "--warmup_steps=1", "--peak_n=256",
                                 "--configs=ours_fp32,keras_hub_fp32,hf_fp32"]),
    "sst2_epoch": ([], ["--max_steps=20"]),
}


def commands(only: list[str], quick: bool, results_dir: str, serving_model_dir: str = "") -> list[list[str]]:
    """The command line of every benchmark to run, in order.

    Raises:
        ValueError: An unknown benchmark name in ``only``.
    """
    unknown = [name for name in only if name not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)} (expected: {', '.join(BENCHMARKS)})")
    out = []
    for name in only:
        full, short = BENCHMARKS[name]
        out.append([sys.executable, "-m", f"benchmarks.{name}", *(short if quick else full),
                    f"--results_dir={results_dir}"])
    if serving_model_dir and not quick:  # serving.py always writes to benchmarks/results
        out.append([sys.executable, "-m", "benchmarks.serving", f"--model_dir={serving_model_dir}"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="short smoke-test settings")
    parser.add_argument("--results_dir", default="")
    parser.add_argument("--serving_model_dir", default="", help="also run benchmarks.serving on this model_dir")
    args = parser.parse_args()
    results_dir = args.results_dir or (tempfile.mkdtemp(prefix="bench_quick_") if args.quick else common.RESULTS)
    try:
        plan = commands(args.only.split(","), args.quick, results_dir, args.serving_model_dir)
    except ValueError as e:
        parser.error(str(e))
    failed = []
    for argv in plan:
        print(f"$ {' '.join(argv[1:])}  (load average {common.load_average()})", file=sys.stderr, flush=True)
        if subprocess.run(argv, cwd=ROOT, check=False).returncode:
            failed.append(argv[2])
    print(f"results in {results_dir}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
