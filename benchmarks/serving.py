"""Serving benchmark: in-process SavedModel vs the embedded server over gRPC and REST.

One run measures, interleaved round by round (so ratios are taken side by side):

* ``inprocess``: the exported SavedModel's ``serving_default`` called in this process, one
  sentence per call from C threads; ``inprocess_batched``: one thread, 32 sentences a call
  (the throughput ceiling server-side batching aims at);
* ``grpc`` / ``rest``: ``llm_serve`` (embedded backend) in its own process, one sentence per
  request, C requests in flight from a separate load-generator process
  (``benchmarks/serving_load.py``: ``grpc.aio`` with pre-serialized requests, asyncio HTTP),
  without and with server-side batching (``--batching_parameters_file``, repeatable to compare
  several; by default the shipped ``serving/batching_parameters.txt``);
* ``grpc_batching_tf``: the same batching server with ``--batching_engine=tensorflow``: TensorFlow's
  ``BatchFunction`` op batches in the graph instead of our Python scheduler (same parameters
  file(s)), so one run compares the two engines side by side;
* ``grpc_batching_nullmodel``: the same batching server on a model with (almost) no compute
  (the test suite's string-length model, same signature): its server CPU per request is what
  the serving stack itself costs, the rest of ``grpc_batching``'s is the model's.

QPS counts sentences per second; latencies are per request. Every measurement also records the
CPU it cost (server, client, this process) and how much CPU the rest of the machine used
meanwhile (``others_cores``: busy CPU from ``/proc/stat`` minus ours), because the machine is
shared. Results go to ``benchmarks/results/serving.{json,md,png}``.

Usage:
    python -m benchmarks.serving --model_dir=runs/sst2_real/tiny [--seconds=5 --rounds=3]
    # the two batching engines side by side:
    python -m benchmarks.serving --model_dir=... --configs=grpc_batching,grpc_batching_tf --output=engines
"""

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

from benchmarks import common, serving_load

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHARED_DEV = os.path.join(ROOT, "..", "shared", "data", "sst2", "dev.tsv")
SAMPLE_DEV = os.path.join(ROOT, "samples", "sst2_sample", "dev.tsv")
SHIPPED_BATCHING = os.path.join(ROOT, "serving", "batching_parameters.txt")
MONITORING = os.path.join(ROOT, "serving", "monitoring.config")
METRICS_PATH = "/monitoring/prometheus/metrics"
BATCH = 32
MODEL = "sst2"
CONFIGS = ("inprocess", "grpc", "grpc_batching", "rest", "rest_batching", "grpc_batching_nullmodel", "grpc_batching_tf")
#: What a run measures without --configs (the in-graph engine only when asked for).
DEFAULT_CONFIGS = CONFIGS[:-1]
BUSY_LOAD = 1.5  # load average (from others) above which timings are flagged as disturbed
_TICK = os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def load_sentences() -> tuple[list[str], str]:
    """SST-2 dev sentences (the shipped sample when ../shared is absent) and their source."""
    path = SHARED_DEV if os.path.isfile(SHARED_DEV) else SAMPLE_DEV
    with open(path, encoding="utf-8") as f:
        return ([row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)],
                os.path.abspath(path))


# ------------------------------------------------------------------------------ CPU accounting
def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> float:
    """CPU seconds all cores have been busy since boot (``/proc/stat``, all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICK


class CpuMeter:
    """CPU used by our processes and by everyone else over one measurement.

    Args:
        pids: Our other processes (servers, load generator); this process is always counted.
    """

    def __init__(self, pids: list[int]):
        self.pids = pids

    def _ours(self) -> dict[str, float]:
        usage = os.times()
        values = {"self": usage.user + usage.system}
        for pid in self.pids:
            values[str(pid)] = process_cpu(pid)
        return values

    def __enter__(self) -> "CpuMeter":
        self._start = (time.perf_counter(), machine_busy(), self._ours())
        return self

    def __exit__(self, *exc_info) -> None:
        began, busy, ours = self._start
        elapsed = time.perf_counter() - began
        after = self._ours()
        self.by_process = {key: after[key] - ours[key] for key in ours}
        self.others_cores = max(0.0, (machine_busy() - busy - sum(self.by_process.values())) / elapsed)


# ---------------------------------------------------------------------------------- load
def run_threads(call, concurrency: int, seconds: float, sentences_per_call: int = 1) -> dict:
    """Runs ``call(i)`` from ``concurrency`` threads of this process for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(offset: int):
        i, own = offset, []
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                call(i)
            except Exception as e:  # noqa: BLE001 - a failed request is a result, counted
                with lock:
                    errors.append(repr(e)[:200])
                continue
            own.append(time.perf_counter() - start)
            i += concurrency
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "qps": len(latencies) * sentences_per_call / elapsed,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def inprocess_callers(version_dir: str, sentences: list[str]):
    """(one sentence a call, BATCH sentences a call) against the loaded SavedModel."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - registers the tokenizer ops the SavedModel uses

    function = tf.saved_model.load(version_dir).signatures["serving_default"]
    singles = [tf.constant([s]) for s in sentences]
    batches = [tf.constant([sentences[(k + j) % len(sentences)] for j in range(BATCH)])
               for k in range(0, len(sentences), BATCH)]
    return (lambda i: function(text=singles[i % len(singles)]),
            lambda i: function(text=batches[i % len(batches)]))


# ------------------------------------------------------------------------------- servers
class Server:
    """``llm_serve --backend=embedded`` on free ports, with the Prometheus page on REST.

    Args:
        model_base_path: The model's base path.
        batching_file: A ``BatchingParameters`` file, or None for no batching.
        engine: ``--batching_engine`` (with a batching file): ``python`` or ``tensorflow``.
    """

    def __init__(self, model_base_path: str, batching_file: str | None, engine: str = "python"):
        from tests.serving.conftest import free_port

        self.grpc_port, self.rest_port = free_port(), free_port()
        binary = os.path.join(os.path.dirname(sys.executable), "llm_serve")
        argv = [binary, "--backend=embedded", f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                f"--model_name={MODEL}", f"--model_base_path={model_base_path}", "--file_system_poll_wait_seconds=0",
                f"--monitoring_config_file={MONITORING}"]
        if batching_file:
            argv.append(f"--batching_parameters_file={batching_file}")
            argv.append(f"--batching_engine={engine}")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Waits until the model is AVAILABLE over REST; raises RuntimeError if the server died."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llm_serve exited: {self.process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://localhost:{self.rest_port}/v1/models/{MODEL}", timeout=5) as r:
                    if b"AVAILABLE" in r.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llm_serve did not become ready in {timeout:g} s")
            time.sleep(0.5)

    def batch_stats(self) -> tuple[float, float]:
        """(rows, batches) run so far, from the ``batch_size`` histogram of the metrics page."""
        with urllib.request.urlopen(f"http://localhost:{self.rest_port}{METRICS_PATH}", timeout=10) as r:
            page = r.read().decode("utf-8")
        values = {}
        for kind in ("sum", "count"):
            match = re.search(rf"^:tensorflow:serving:batch_size_{kind}{{[^}}]*}} (\S+)$", page, re.MULTILINE)
            values[kind] = float(match.group(1)) if match else 0.0
        return values["sum"], values["count"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------- results
def summarize(runs: list[dict]) -> dict:
    """Median and spread over rounds of every numeric field."""
    def stat(key):
        values = [r[key] for r in runs if r.get(key) is not None]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None

    keys = ["qps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "client_cpu_ms_per_request",
            "cpu_ms_per_sentence", "mean_batch_size", "others_cores"]
    summary = {key: stat(key) for key in keys if any(r.get(key) is not None for r in runs)}
    summary.update(errors=sum(r["errors"] for r in runs), rounds=runs)
    return summary


def plot(results: dict, names: list[str], concurrency: list[int], path: str) -> None:
    """Bar chart of median QPS per configuration and concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(9, 1.6 * len(names)), 4.5))
    width = 0.8 / len(concurrency)
    for k, c in enumerate(concurrency):
        values = [results[f"{n}_c{c}"]["qps"]["median"] if f"{n}_c{c}" in results else 0 for n in names]
        ax.bar(np.arange(len(names)) + k * width, values, width, label=f"concurrency {c}")
    ceiling = results["inprocess_batched"]["qps"]["median"]
    ax.axhline(ceiling, color="black", linestyle="--", label=f"in-process batch {BATCH}")
    ax.axhline(0.8 * ceiling, color="grey", linestyle=":", label="80% target")
    ax.set_xticks(np.arange(len(names)) + width * (len(concurrency) - 1) / 2, names, fontsize=8)
    ax.set_ylabel("sentences / s (median of rounds)")
    ax.set_title("Tiny SST-2 model: in-process vs embedded server (separate load-generator process)")
    ax.legend(fontsize=8)
    common.save_png(fig, path)


def batching_label(path: str, index: int, count: int) -> str:
    """``grpc_batching`` for a single file, else ``grpc_batching[<file stem>]``."""
    return "" if count == 1 else f"[{os.path.splitext(os.path.basename(path))[0] or index}]"


def main() -> None:
    """Exports, starts the servers and the load generator, measures round by round, writes results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="llm_train model_dir of a sentence classifier")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help=f"subset of {','.join(CONFIGS)} (default: all but grpc_batching_tf)")
    parser.add_argument("--batching_parameters_file", action="append",
                        help="BatchingParameters file(s) for the batching servers (repeat to compare; "
                             "default: the shipped serving/batching_parameters.txt)")
    parser.add_argument("--output", default="serving", help="results/<output>.{json,md,png}")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"--configs: unknown {sorted(unknown)}; choose from {CONFIGS}")
    batching_files = [os.path.abspath(p) for p in (args.batching_parameters_file or [SHIPPED_BATCHING])]
    for path in batching_files:
        if not os.path.isfile(path):
            parser.error(f"--batching_parameters_file: {path} does not exist")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from llm_tf.export import exporter
    from llm_tf.serving import config_files

    sentences, source = load_sentences()
    work = tempfile.mkdtemp(prefix="serving_bench_")
    base = os.path.join(work, MODEL)
    export = exporter.export_saved_model(args.model_dir, base, version=1)
    spec_path = os.path.join(work, "load_spec.json")
    serving_load.write_spec(spec_path, serving_load.make_spec(MODEL, sentences, ["label_ids", "labels", "scores"]))
    batchings = {path: config_files.load_batching_parameters(path) for path in batching_files}
    null_base = os.path.join(work, "null")
    if "grpc_batching_nullmodel" in configs:
        from tests.serving.conftest import save_tiny_model

        save_tiny_model(os.path.join(null_base, "1"), warmup=False)

    # Server key: (batched, engine, label); label "" without batching, else the batching file's
    # label ("" too for a single file), "_nullmodel" for the null model.
    servers: dict[tuple[bool, str, str], Server] = {}
    if {"grpc", "rest"} & set(configs):
        servers[(False, "python", "")] = Server(base, None)
    for engine, wanted in (("python", {"grpc_batching", "rest_batching"}), ("tensorflow", {"grpc_batching_tf"})):
        if wanted & set(configs):
            for k, path in enumerate(batching_files):
                servers[(True, engine, batching_label(path, k, len(batching_files)))] = Server(base, path, engine)
    if "grpc_batching_nullmodel" in configs:
        servers[(True, "python", "_nullmodel")] = Server(null_base, batching_files[0])
    load = serving_load.LoadProcess(spec_path)
    load_before = load_average()
    try:
        for server in servers.values():
            server.wait_ready()
        single, batch = inprocess_callers(export.path, sentences)
        pids = [s.pid for s in servers.values()] + [load.pid]

        def server_call(kind: str, key: tuple[bool, str, str]):
            batched = key[0]
            server = servers[key]

            def call(c: int, seconds: float) -> dict:
                port = server.grpc_port if kind == "grpc" else server.rest_port
                before = server.batch_stats() if batched else None
                with CpuMeter(pids) as meter:
                    result = load.run(kind, f"localhost:{port}", c, seconds)
                n = max(1, result["requests"])
                result["server_cpu_ms_per_request"] = 1000 * meter.by_process[str(server.pid)] / n
                result["client_cpu_ms_per_request"] = 1000 * result["client_cpu_s"] / n
                result["others_cores"] = meter.others_cores
                if batched:
                    rows, batches = (a - b for a, b in zip(server.batch_stats(), before))
                    result["mean_batch_size"] = rows / batches if batches else None
                return result

            return call

        def local_call(fn, rows: int):
            def call(c: int, seconds: float) -> dict:
                with CpuMeter(pids) as meter:
                    result = run_threads(fn, c, seconds, rows)
                result["cpu_ms_per_sentence"] = 1000 * meter.by_process["self"] / max(1, result["requests"] * rows)
                result["others_cores"] = meter.others_cores
                return result

            return call

        plan = [("inprocess_batched", local_call(batch, BATCH), 1)]
        for c in concurrency:
            for config in configs:
                if config == "inprocess":
                    plan.append((f"inprocess_c{c}", local_call(single, 1), c))
                    continue
                if config == "grpc_batching_nullmodel":
                    plan.append((f"{config}_c{c}", server_call("grpc", (True, "python", "_nullmodel")), c))
                    continue
                kind, _, batching = config.partition("_")  # batching: "", "batching" or "batching_tf"
                engine = "tensorflow" if batching.endswith("_tf") else "python"
                for key in servers:
                    if key[:2] == (bool(batching), engine) and key[2] != "_nullmodel":
                        plan.append((f"{config}{key[2]}_c{c}", server_call(kind, key), c))
        for _, call, _ in plan:  # warm every path once
            call(1, 0.5)
        rounds: dict[str, list] = {name: [] for name, *_ in plan}
        loads: list[list[float]] = []
        for r in range(args.rounds):
            loads.append(load_average())
            for name, call, c in plan:
                rounds[name].append(call(c, args.seconds))
                result = rounds[name][-1]
                print(f"round {r + 1} {name}: {result['qps']:.1f} qps, others {result['others_cores']:.2f} cores",
                      file=sys.stderr)
    finally:
        load.close()
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, rounds, plan, loads, load_before, batchings, sentences, source, concurrency)


def write_report(args, rounds, plan, loads, load_before, batchings, sentences, source, concurrency) -> None:
    """Writes results/<output>.{json,md,png}."""
    results = {name: summarize(runs) for name, runs in rounds.items()}
    top = max(concurrency)
    ratios = {}
    for name in rounds:
        if name.startswith("grpc_batching") and name.endswith(f"_c{top}") and "nullmodel" not in name:
            per_round = [g["qps"] / b["qps"] for g, b in zip(rounds[name], rounds["inprocess_batched"])]
            ratios[name] = {"median_of_rounds": statistics.median(per_round), "per_round": per_round,
                            "median_qps_ratio": (results[name]["qps"]["median"]
                                                 / results["inprocess_batched"]["qps"]["median"]),
                            "target": 0.8, "met": statistics.median(per_round) >= 0.8}
    others = [r["others_cores"] for runs in rounds.values() for r in runs]
    busy = {"load_average_before": load_before, "load_average_per_round": loads,
            "others_cores_median": statistics.median(others), "others_cores_max": max(others),
            # The per-round load averages include this benchmark's own processes; others_cores does not.
            "busy": load_before[0] > BUSY_LOAD or statistics.median(others) > 0.5}
    report = {
        "machine": common.machine_info(),
        "command": "python -m benchmarks.serving " + " ".join(sys.argv[1:]),
        "model_dir": os.path.abspath(args.model_dir),
        "sentences": {"source": source, "count": len(sentences)},
        "load_generator": "benchmarks/serving_load.py in its own process: grpc.aio, pre-serialized requests; "
                          "REST over asyncio HTTP/1.1",
        "batching": {path: vars(spec) for path, spec in batchings.items()},
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
        "machine_load": busy,
        "results": results,
        "grpc_batching_vs_inprocess_batched": ratios,
    }

    def fmt(res, key, digits=2):
        value = res.get(key)
        return "" if value is None else f"{value['median']:.{digits}f}"

    rows = ["| configuration | concurrency | QPS (median, min-max) | p50 ms | p99 ms | server CPU ms/req | "
            "client CPU ms/req | mean batch | others' cores | errors |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, *_ in plan:
        res = results[name]
        label, _, c = name.rpartition("_c") if name != "inprocess_batched" else (name, "", "1")
        cpu = fmt(res, "server_cpu_ms_per_request") or (f"({fmt(res, 'cpu_ms_per_sentence')}/sentence)"
                                                       if res.get("cpu_ms_per_sentence") else "")
        rows.append(f"| {label} | {c} | {res['qps']['median']:.1f} ({res['qps']['min']:.1f}-{res['qps']['max']:.1f}) | "
                    f"{fmt(res, 'p50_ms')} | {fmt(res, 'p99_ms')} | {cpu} | {fmt(res, 'client_cpu_ms_per_request')} | "
                    f"{fmt(res, 'mean_batch_size', 1)} | {fmt(res, 'others_cores')} | {res['errors']} |")
    lines = []
    for name, ratio in ratios.items():
        verdict = "met" if ratio["met"] else "NOT met"
        lines.append(f"{name.rpartition('_c')[0]} at concurrency {top} / in-process batched: "
                     f"**{ratio['median_of_rounds']:.2f}** median of rounds "
                     f"(per round: {', '.join(f'{x:.2f}' for x in ratio['per_round'])}; ratio of "
                     f"medians {ratio['median_qps_ratio']:.2f}; target >= 0.80: {verdict}).")
    load_line = (f"Machine load: load average {', '.join(f'{x:g}' for x in load_before)} (1/5/15 min) before the run, "
                 f"1-min {', '.join(f'{load[0]:g}' for load in loads)} at the start of each round; "
                 f"other processes used {busy['others_cores_median']:.2f} cores (median over measurements, "
                 f"max {busy['others_cores_max']:.2f}) of the 2.")
    if busy["busy"]:
        load_line += (" **The machine was busy with other work during this run: absolute numbers are low and noisy; "
                      "the interleaved per-round ratios are the figures to compare.**")
    batching_text = "; ".join(
        f"`{os.path.relpath(path, ROOT)}`: max_batch_size {s.max_batch_size}, batch_timeout_micros "
        f"{s.batch_timeout_micros}, num_batch_threads {s.num_batch_threads}, allowed_batch_sizes "
        f"{list(s.allowed_batch_sizes) or 'any'}" for path, s in batchings.items())
    engines = ("`grpc_batching_tf`: the same batching server with `--batching_engine=tensorflow` (TensorFlow's "
               "`BatchFunction` op batches in the graph; `grpc_batching`: our Python scheduler). "
               if any(name.startswith("grpc_batching_tf") for name, *_ in plan) else "")
    markdown = "\n".join([
        f"# Serving: in-process SavedModel vs embedded server ({os.path.basename(report['model_dir'].rstrip('/'))})",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['cpu']} (CPU flags: {', '.join(report['machine'].get('cpu_flags', []))}), "
        f"{report['machine']['cores']} cores, "
        f"TF {report['machine']['tensorflow']}, commit {report['machine']['commit']}, {report['machine']['date']}  ",
        load_line, "",
        f"Requests: one sentence each, from {len(sentences)} sentences of "
        f"{os.path.basename(os.path.dirname(source))} dev, "
        f"sent by a separate load-generator process ({report['load_generator']}) keeping C requests in flight; "
        f"`inprocess*` run in the benchmark process (threads; `inprocess_batched` calls the SavedModel with {BATCH} "
        f"sentences). QPS = sentences/s. {args.rounds} rounds of {args.seconds:g} s, configurations interleaved within "
        f"each round. Batching: {batching_text}. {engines}CPU columns: CPU time of the server (or, in brackets, of the "
        "benchmark process per sentence in-process) and of the load generator per request; others' cores: CPU "
        "the rest of the machine used during the measurement.", "",
        *rows, "",
        *lines, "",
        f"![serving]({args.output}.png)", "",
    ])
    common.write_results(args.output, report, markdown)
    names = []
    for name in rounds:
        base = name.rpartition("_c")[0] if name != "inprocess_batched" else None
        if base and base not in names:
            names.append(base)
    plot(results, names, concurrency, os.path.join(common.RESULTS, f"{args.output}.png"))


if __name__ == "__main__":
    main()
