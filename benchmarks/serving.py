"""Serving benchmark: in-process SavedModel vs the embedded server over gRPC and REST.

One run measures, interleaved round by round (so ratios are taken side by side):

* ``inprocess``: the exported SavedModel's ``serving_default`` called in this process, one
  sentence per call from C threads; ``inprocess_batched``: one thread, 32 sentences a call
  (the throughput ceiling server-side batching aims at);
* ``grpc`` / ``rest``: ``llm_serve`` (embedded backend) in its own process, one sentence per
  request from C client threads, without and with server-side batching.

QPS counts sentences per second; latencies are per request. Results go to
``benchmarks/results/serving.{json,md,png}``.

Usage:
    python -m benchmarks.serving --model_dir=runs/sst2_real/tiny [--seconds=5 --rounds=3]
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks import common

SHARED_DEV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "sst2", "dev.tsv")
SAMPLE_DEV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "sst2_sample", "dev.tsv")
BATCH = 32


def load_sentences() -> tuple[list[str], str]:
    """SST-2 dev sentences (the shipped sample when ../shared is absent) and their source."""
    path = SHARED_DEV if os.path.isfile(SHARED_DEV) else SAMPLE_DEV
    with open(path, encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)], os.path.abspath(path)


def run_load(call, concurrency: int, seconds: float, sentences_per_call: int = 1) -> dict:
    """Runs ``call(i)`` from ``concurrency`` threads for ``seconds``; returns QPS and latencies."""
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


def start_server(model_base_path: str, batching_file: str | None) -> tuple[subprocess.Popen, int, int]:
    """Starts ``llm_serve --backend=embedded`` on free ports; returns (process, gRPC port, REST port)."""
    from tests.serving.conftest import free_port

    grpc_port, rest_port = free_port(), free_port()
    binary = os.path.join(os.path.dirname(sys.executable), "llm_serve")
    argv = [binary, "--backend=embedded", f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--model_name=sst2",
            f"--model_base_path={model_base_path}", "--file_system_poll_wait_seconds=0"]
    if batching_file:
        argv += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    from llm_tf.serving.client import ServingClient

    with ServingClient(f"localhost:{grpc_port}", timeout=5, retries=0) as client:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llm_serve exited: {process.stderr.read()[-2000:]}")
            try:
                if any(s["state"] == "AVAILABLE" for s in client.status("sst2")):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("llm_serve did not become ready in 180 s")
            time.sleep(0.3)
    return process, grpc_port, rest_port


def grpc_caller(port: int, sentences: list[str]):
    """A function sending request ``i`` (one sentence) over one shared gRPC channel."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"localhost:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    requests_ = []
    for sentence in sentences:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "sst2"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([sentence]))
        requests_.append(request)

    def call(i: int):
        stub.Predict(requests_[i % len(requests_)], timeout=30)

    return call


def rest_caller(port: int, sentences: list[str]):
    """A function posting request ``i`` (one sentence, row format) with a session per thread."""
    import requests

    local = threading.local()
    url = f"http://localhost:{port}/v1/models/sst2:predict"
    bodies = [json.dumps({"instances": [s]}) for s in sentences]

    def call(i: int):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.post(url, data=bodies[i % len(bodies)], timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    return call


def inprocess_callers(version_dir: str, sentences: list[str]):
    """(one sentence a call, BATCH sentences a call) against the loaded SavedModel."""
    import tensorflow as tf

    function = tf.saved_model.load(version_dir).signatures["serving_default"]
    singles = [tf.constant([s]) for s in sentences]
    batches = [tf.constant([sentences[(k + j) % len(sentences)] for j in range(BATCH)]) for k in range(0, len(sentences), BATCH)]
    return (lambda i: function(text=singles[i % len(singles)]),
            lambda i: function(text=batches[i % len(batches)]))


def summarize(runs: list[dict]) -> dict:
    """Median and spread over rounds."""
    def stat(key):
        values = [r[key] for r in runs if r[key] is not None]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None

    return {"qps": stat("qps"), "p50_ms": stat("p50_ms"), "p99_ms": stat("p99_ms"),
            "errors": sum(r["errors"] for r in runs), "rounds": runs}


def plot(results: dict, concurrency: list[int], path: str) -> None:
    """Bar chart of median QPS per configuration and concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["inprocess", "grpc", "grpc_batching", "rest", "rest_batching"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(concurrency)
    for k, c in enumerate(concurrency):
        values = [results[f"{n}_c{c}"]["qps"]["median"] for n in names]
        ax.bar(np.arange(len(names)) + k * width, values, width, label=f"concurrency {c}")
    ceiling = results["inprocess_batched"]["qps"]["median"]
    ax.axhline(ceiling, color="black", linestyle="--", label=f"in-process batch {BATCH}")
    ax.axhline(0.8 * ceiling, color="grey", linestyle=":", label="80% target")
    ax.set_xticks(np.arange(len(names)) + width * (len(concurrency) - 1) / 2, names)
    ax.set_ylabel("sentences / s (median of rounds)")
    ax.set_title("Tiny SST-2 model: in-process vs embedded server")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)


def main() -> None:
    """Exports, starts the servers, measures round by round, writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="llm_train model_dir of a sentence classifier")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--batch_timeout_micros", type=int, default=2000)
    parser.add_argument("--num_batch_threads", type=int, default=2)
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from llm_tf.export import exporter
    from llm_tf.serving import config as config_lib

    sentences, source = load_sentences()
    work = tempfile.mkdtemp(prefix="serving_bench_")
    base = os.path.join(work, "sst2")
    export = exporter.export_saved_model(args.model_dir, base, version=1)
    batching = config_lib.BatchingSpec(max_batch_size=BATCH, batch_timeout_micros=args.batch_timeout_micros,
                                       num_batch_threads=args.num_batch_threads, max_enqueued_batches=1000)
    batching_file = os.path.join(work, "batching_parameters.txt")
    config_lib.write_batching_parameters(batching_file, batching)
    plain, plain_grpc, plain_rest = start_server(base, None)
    batched, batched_grpc, batched_rest = start_server(base, batching_file)
    try:
        single, batch = inprocess_callers(export.path, sentences)
        callers = {
            "inprocess": (single, 1),
            "grpc": (grpc_caller(plain_grpc, sentences), 1),
            "grpc_batching": (grpc_caller(batched_grpc, sentences), 1),
            "rest": (rest_caller(plain_rest, sentences), 1),
            "rest_batching": (rest_caller(batched_rest, sentences), 1),
        }
        plan = [("inprocess_batched", batch, 1, BATCH)]
        plan += [(f"{name}_c{c}", call, c, n) for c in concurrency for name, (call, n) in callers.items()]
        for _, call, _, _ in plan:  # warm every path once
            run_load(call, 1, 0.5)
        rounds: dict[str, list] = {name: [] for name, *_ in plan}
        for r in range(args.rounds):
            for name, call, c, n in plan:
                rounds[name].append(run_load(call, c, args.seconds, n))
                print(f"round {r + 1} {name}: {rounds[name][-1]['qps']:.1f} qps", file=sys.stderr)
    finally:
        for process in (plain, batched):
            process.terminate()
            process.wait(30)
    results = {name: summarize(runs) for name, runs in rounds.items()}
    ceiling = results["inprocess_batched"]["qps"]["median"]
    target = results[f"grpc_batching_c{max(concurrency)}"]["qps"]["median"] / ceiling
    per_round = [g["qps"] / b["qps"] for g, b in zip(rounds[f"grpc_batching_c{max(concurrency)}"], rounds["inprocess_batched"])]
    report = {
        "machine": common.machine_info(),
        "command": "python -m benchmarks.serving " + " ".join(sys.argv[1:]),
        "model_dir": os.path.abspath(args.model_dir),
        "sentences": {"source": source, "count": len(sentences)},
        "batching": vars(batching) if hasattr(batching, "__dict__") else str(batching),
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
        "results": results,
        "grpc_batching_vs_inprocess_batched": {"median_of_medians": target, "per_round": per_round,
                                               "target": 0.8, "met": target >= 0.8},
    }
    rows = ["| configuration | concurrency | QPS (median, min-max) | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for name, *_ in plan:
        res = results[name]
        label, _, c = name.rpartition("_c") if name != "inprocess_batched" else (name, "", "1")
        rows.append(f"| {label} | {c} | {res['qps']['median']:.1f} ({res['qps']['min']:.1f}-{res['qps']['max']:.1f}) | "
                    f"{res['p50_ms']['median']:.2f} | {res['p99_ms']['median']:.2f} | {res['errors']} |")
    markdown = "\n".join([
        "# Serving: in-process SavedModel vs embedded server (tiny SST-2 model)", "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, TF {report['machine']['tensorflow']}, "
        f"commit {report['machine']['commit']}, {report['machine']['date']}  ",
        f"Requests: one sentence each, from {len(sentences)} sentences of {os.path.basename(os.path.dirname(source))} dev; "
        f"`inprocess_batched` calls the SavedModel with {BATCH} sentences. QPS = sentences/s. {args.rounds} rounds of "
        f"{args.seconds:g} s, configurations interleaved within each round. Batching: max_batch_size {BATCH}, "
        f"batch_timeout_micros {args.batch_timeout_micros}, num_batch_threads {args.num_batch_threads}.", "",
        *rows, "",
        f"gRPC with batching at concurrency {max(concurrency)} / in-process batched: **{target:.2f}** "
        f"(per round: {', '.join(f'{x:.2f}' for x in per_round)}; target >= 0.80: {'met' if target >= 0.8 else 'NOT met'}).", "",
        "![serving](serving.png)", "",
    ])
    common.write_results("serving", report, markdown)
    plot(results, concurrency, os.path.join(common.RESULTS, "serving.png"))


if __name__ == "__main__":
    main()
