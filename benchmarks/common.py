"""Helpers shared by the benchmarks: machine facts, repeated timing, result files."""

import os
import platform
import statistics
import subprocess
import sys
import time

from llm_tf.bin.startup import cpu_model_and_extensions
from llm_tf.io_utils import atomic_write_json, atomic_write_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info() -> dict:
    """CPU model and flags, cores, Python and library versions of this run."""
    import tensorflow as tf

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        # The vector extensions llm-tf's start line reports (llm_tf.bin.startup.VECTOR_EXTENSIONS).
        "cpu_flags": cpu_model_and_extensions()[1],
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine disturbs timings)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def spread(values: list[float]) -> dict:
    """Median, min, max and all values of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def ratio_summary(numerators: list[float], denominators: list[float]) -> dict:
    """Per-round ratios of two systems measured in the same rounds, with their median and spread.

    Args:
        numerators, denominators: Rates of the two systems, one per round, in round order.

    Raises:
        ValueError: The lists differ in length or are empty.
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"need the same non-zero number of rounds, got {len(numerators)} and {len(denominators)}")
    return spread([a / b for a, b in zip(numerators, denominators)])


def machine_line(machine: dict, versions: str) -> str:
    """The machine sentence of a results file: CPU, cores, then ``versions``, load average, date, commit.

    Args:
        machine: From :func:`machine_info` (with ``load_average_before`` added by the benchmark).
        versions: Text right after the core count, e.g. ``"; TF 2.20.0, torch 2.13.0"``.
    """
    m = machine
    flags = ""
    if "cpu_flags" in m:
        flags = f" (CPU flags: {', '.join(m['cpu_flags']) or 'no AVX2 or later'})"
    return (f"{m['cpu']}{flags}, {m['cores']} cores{versions}; load average {m['load_average_before']} before, "
            f"{m['load_average']} after; {m['date']}, commit {m['commit']}.  ")


def peer_version_text(machine: dict, *names: str) -> str:
    """``", torch X, transformers Y"`` for the named peer packages of this run ('' when no peer ran)."""
    peers = machine.get("peers")
    return "".join(f", {name} {peers.get(name)}" for name in names) if peers else ""


def write_results(name: str, result: dict, markdown: str, directory: str = RESULTS) -> None:
    """Writes ``<directory>/<name>.json`` and ``<directory>/<name>.md`` atomically (default ``results/``)."""
    os.makedirs(directory, exist_ok=True)
    atomic_write_json(os.path.join(directory, f"{name}.json"), result)
    atomic_write_text(os.path.join(directory, f"{name}.md"), markdown)
    print(markdown)
    print(f"wrote {os.path.join(directory, name)}.json/.md", file=sys.stderr)


def save_png(fig, path: str) -> None:
    """Writes a matplotlib figure to ``path`` atomically (temporary file, then rename)."""
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
