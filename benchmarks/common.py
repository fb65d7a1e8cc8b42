"""Helpers shared by the benchmarks: machine facts, repeated timing, result files."""

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

from llm_tf.io_utils import atomic_write_json, atomic_write_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info() -> dict:
    """CPU model, cores, Python and library versions of this run."""
    import tensorflow as tf

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def time_repeats(function: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Runs ``function`` ``warmup`` + ``repeats`` times; returns seconds (median, min, max, all)."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "runs": seconds}


def write_results(name: str, result: dict, markdown: str) -> None:
    """Writes ``results/<name>.json`` and ``results/<name>.md`` atomically."""
    os.makedirs(RESULTS, exist_ok=True)
    atomic_write_json(os.path.join(RESULTS, f"{name}.json"), result)
    atomic_write_text(os.path.join(RESULTS, f"{name}.md"), markdown)
    print(markdown)
    print(f"wrote {os.path.join(RESULTS, name)}.json/.md", file=sys.stderr)
