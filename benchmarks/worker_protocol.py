"""The worker side of the benchmark worker protocol (see :class:`benchmarks.peers.Worker`).

Worker scripts may run in the peer virtualenv, where neither TensorFlow nor llm-tf's
dependencies are installed, so this module imports only the standard library.
"""

import json
import os
import sys

#: Prefix of the one line a worker prints on stdout per request (other output is ignored).
REPLY = "@@reply "


def serve(handler, ready: dict) -> None:
    """The worker side of the protocol: reply ``ready``, then answer requests until ``exit``.

    Library output printed to stdout goes to stderr.

    Args:
        handler: ``handler(request: dict) -> dict``, called for every request but ``exit``.
        ready: The first reply (what the worker loaded: versions, sizes).
    """
    reply_stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # keep stray prints off the reply channel

    def send(obj: dict) -> None:
        reply_stream.write(REPLY + json.dumps(obj) + "\n")
        reply_stream.flush()

    send({"ready": True, **ready})
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("op") == "exit":
            break
        try:
            send(handler(message))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises WorkerError
            import traceback

            traceback.print_exc()
            send({"error": f"{type(e).__name__}: {e}"})


def matmul_rate(matmul, n: int, repeats: int) -> dict:
    """GFLOP/s of ``matmul()`` (one n x n @ n x n product, run to completion): best and median.

    Called once untimed first; stops early past 10 s of timed calls (a slow path, such as bf16
    without hardware support, is slow enough to show).
    """
    import statistics
    import time

    matmul()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        seconds.append(time.perf_counter() - start)
        if sum(seconds) > 10:
            break
    flops = 2 * n**3
    return {"best_gflops": flops / min(seconds) / 1e9, "median_gflops": flops / statistics.median(seconds) / 1e9}


def tokenizer_handler(variants: dict, sample):
    """Request handler of a tokenizer worker: ``round`` times ``variants[name]()`` (sentences done),
    ``sample`` returns ``sample(count)``."""
    import time

    def handle(request: dict) -> dict:
        if request["op"] == "round":
            start = time.perf_counter()
            count = variants[request["variant"]]()
            return {"seconds": time.perf_counter() - start, "sentences": count}
        if request["op"] == "sample":
            return sample(request["count"])
        raise ValueError(f"unknown op {request['op']!r}")

    return handle
