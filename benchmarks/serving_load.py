"""Load generator for the serving benchmark, run in its own process like a remote client.

It keeps ``concurrency`` requests in flight from one asyncio loop: over gRPC with ``grpc.aio``
sending pre-serialized ``PredictRequest`` bytes through a generic ``unary_unary`` call (no proto
building per request), or over REST posting pre-built HTTP/1.1 requests from asyncio streams,
keeping connections alive when the server allows it (``httpx2``, the async client the venv
has, measured 2.2 ms of client CPU per request here against 0.7 ms for this one; ``aiohttp``
is not installed).
Every response is checked (it parses, has the expected outputs, one row per sentence sent);
a failed or wrong response counts as an error, not as a result. It imports neither TensorFlow
nor the TF Serving protos: the parent hands it a *request spec* (:func:`make_spec`) holding
the serialized requests and the ``FileDescriptorSet`` needed to parse responses.

Two ways to run it:

* one measurement, a JSON line on stdout::

      python -m benchmarks.serving_load --spec=SPEC.json --target=grpc --address=localhost:8500 \\
          --concurrency=32 --seconds=5

* ``--commands``: a long-lived worker reading one JSON command a line on stdin
  (``{"target", "address", "concurrency", "seconds"}``) and answering one JSON line each; this
  is how ``benchmarks.serving`` drives it (:class:`LoadProcess`), so its start-up is paid once.

Result fields: ``qps`` (sentences/s), ``p50_ms``, ``p99_ms`` (per request), ``requests``,
``errors``, ``first_error``, ``client_cpu_s`` (this process's CPU time during the run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
RESPONSE_TYPE = "tensorflow.serving.PredictResponse"
TARGETS = ("grpc", "rest")


# ------------------------------------------------------------------------------ the spec
def _descriptor_set(file_descriptor) -> bytes:
    """Serializes ``file_descriptor`` and its dependencies, dependencies first."""
    from google.protobuf import descriptor_pb2

    ordered, seen = [], set()

    def visit(fd):
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        ordered.append(proto)

    visit(file_descriptor)
    return descriptor_pb2.FileDescriptorSet(file=ordered).SerializeToString()


def make_spec(model_name: str, sentences: list[str], output_aliases: list[str]) -> dict:
    """Builds the request spec for one sentence per request (run in the parent; imports TF protos).

    Args:
        model_name: The served model's name.
        sentences: The texts; request ``i`` sends ``sentences[i % len]``.
        output_aliases: The outputs every response must have (the signature's).

    Returns:
        A JSON-able dict: serialized gRPC requests, REST bodies, the descriptors to parse
        ``PredictResponse`` and what to check.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    from llm_tf.serving import tensors

    requests = []
    for sentence in sentences:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        tensors.to_proto([sentence], types_pb2.DT_STRING, out=request.inputs["text"])
        requests.append(base64.b64encode(request.SerializeToString()).decode("ascii"))
    return {
        "model": model_name,
        "grpc_method": PREDICT_METHOD,
        "descriptors": base64.b64encode(_descriptor_set(predict_pb2.DESCRIPTOR)).decode("ascii"),
        "grpc_requests": requests,
        "rest_path": f"/v1/models/{model_name}:predict",
        "rest_bodies": [json.dumps({"instances": [s]}) for s in sentences],
        "rows": 1,
        "outputs": sorted(output_aliases),
    }


def _response_class(spec: dict):
    """The ``PredictResponse`` class, built from the spec's descriptors in a private pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(spec["descriptors"]))
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(RESPONSE_TYPE))


# ------------------------------------------------------------------------------ callers
class _Caller:
    """Sends request ``i`` and checks its answer; one per (target, address), reused across runs."""

    def __init__(self, spec: dict, target: str, address: str):
        self.rows = int(spec["rows"])
        self.outputs = list(spec["outputs"])
        self.target = target
        if target == "grpc":
            import grpc.aio

            self._response = _response_class(spec)
            self._requests = [base64.b64decode(r) for r in spec["grpc_requests"]]
            self._channel = grpc.aio.insecure_channel(address)
            # No (de)serializers: bytes go out as they are and come back as bytes.
            self._predict = self._channel.unary_unary(spec["grpc_method"], request_serializer=None,
                                                      response_deserializer=None)
        elif target == "rest":
            host, _, port = address.rpartition(":")
            self._host, self._port = host.strip("[]"), int(port)
            head = (f"POST {spec['rest_path']} HTTP/1.1\r\nHost: {address}\r\n"
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n")
            self._posts = [head.format(len(b.encode("utf-8"))).encode("ascii") + b.encode("utf-8")
                           for b in spec["rest_bodies"]]
            self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        else:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")

    async def call(self, i: int) -> None:
        if self.target == "grpc":
            raw = await self._predict(self._requests[i % len(self._requests)], timeout=30)
            self._check_grpc(raw)
        else:
            status, body = await self._post(self._posts[i % len(self._posts)])
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            self._check_rest(body)

    async def _post(self, message: bytes) -> tuple[int, bytes]:
        """One HTTP/1.1 request on a kept-alive connection (a new one when none is idle)."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            writer.write(message)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            if "content-length" not in headers:
                raise RuntimeError(f"response without Content-Length: {status_line}")
            body = await reader.readexactly(int(headers["content-length"]))
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close" or status_line.startswith("HTTP/1.0"):
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(status_line.split()[1]), body

    def _check_grpc(self, raw: bytes) -> None:
        response = self._response.FromString(raw)
        if sorted(response.outputs) != self.outputs:
            raise RuntimeError(f"outputs {sorted(response.outputs)}, expected {self.outputs}")
        for alias, tensor in response.outputs.items():
            dims = tensor.tensor_shape.dim
            if not dims or dims[0].size != self.rows:
                raise RuntimeError(f"output {alias}: shape {[d.size for d in dims]}, expected {self.rows} rows")

    def _check_rest(self, body: bytes) -> None:
        predictions = json.loads(body)["predictions"]
        if len(predictions) != self.rows:
            raise RuntimeError(f"{len(predictions)} predictions, expected {self.rows}")
        if len(self.outputs) > 1 and sorted(predictions[0]) != self.outputs:
            raise RuntimeError(f"prediction keys {sorted(predictions[0])}, expected {self.outputs}")

    async def close(self) -> None:
        if self.target == "grpc":
            await self._channel.close()
            return
        for _, writer in self._idle:
            writer.close()
        self._idle = []


async def measure(call: Callable[[int], Awaitable[None]], concurrency: int, seconds: float,
                  rows: int = 1) -> dict:
    """Keeps ``concurrency`` calls in flight for ``seconds``; returns QPS and latencies.

    Args:
        call: Sends request ``i`` and raises on a failed or wrong answer.
        concurrency: Requests in flight.
        seconds: How long new requests are started.
        rows: Sentences per request (QPS counts sentences).

    Returns:
        ``qps``, ``p50_ms``, ``p99_ms``, ``requests``, ``errors``, ``first_error``, ``client_cpu_s``.
    """
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                await call(i)
            except Exception as e:  # noqa: BLE001 - a failed request is a result, counted
                errors.append(repr(e)[:200])
            else:
                latencies.append(time.perf_counter() - start)
            i += concurrency

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def percentile(q: float) -> float | None:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    return {
        "qps": len(latencies) * rows / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
    }


class _Runner:
    """Runs commands, keeping one caller (channel / HTTP client) per target and address."""

    def __init__(self, spec: dict):
        self.spec = spec
        self._callers: dict[tuple, _Caller] = {}

    async def run(self, command: dict) -> dict:
        target, address = command["target"], command["address"]
        concurrency, seconds = int(command["concurrency"]), float(command["seconds"])
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if concurrency < 1 or seconds <= 0:
            raise ValueError(f"concurrency must be >= 1 and seconds > 0, got {concurrency} and {seconds}")
        key = (target, address)
        caller = self._callers.get(key)
        if caller is None:
            caller = self._callers[key] = _Caller(self.spec, target, address)
        return await measure(caller.call, concurrency, seconds, caller.rows)

    async def close(self) -> None:
        for caller in self._callers.values():
            await caller.close()


async def _serve_commands(spec: dict) -> None:
    """Answers JSON commands from stdin, one JSON line each, until EOF."""
    runner = _Runner(spec)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            try:
                result = await runner.run(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                result = {"error": f"bad command: {e}"}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        await runner.close()


# --------------------------------------------------------------------------- the parent side
class LoadProcess:
    """Drives a ``--commands`` load generator subprocess (what ``benchmarks.serving`` uses).

    Args:
        spec_path: A request spec written with :func:`write_spec`.

    Raises:
        RuntimeError: The subprocess died or answered an error.
    """

    def __init__(self, spec_path: str):
        argv = [sys.executable, "-m", "benchmarks.serving_load", f"--spec={spec_path}", "--commands"]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root)

    @property
    def pid(self) -> int:
        """The subprocess's process id (for CPU accounting)."""
        return self._process.pid

    def run(self, target: str, address: str, concurrency: int, seconds: float) -> dict:
        """Runs one measurement in the subprocess and returns its result dict."""
        command = {"target": target, "address": address, "concurrency": concurrency, "seconds": seconds}
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with code {self._process.wait()}")
        result = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"load generator: {result['error']}")
        return result

    def close(self) -> None:
        """Ends the subprocess (closes its stdin and waits)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


async def _once(spec: dict, target: str, address: str, concurrency: int, seconds: float) -> dict:
    runner = _Runner(spec)
    try:
        return await runner.run({"target": target, "address": address, "concurrency": concurrency, "seconds": seconds})
    finally:
        await runner.close()


def main_once(spec_path: str, target: str, address: str, concurrency: int, seconds: float) -> dict:
    """Runs one measurement in this process (what the command line does without ``--commands``).

    Args:
        spec_path: A request spec written with :func:`write_spec`.
        target: ``grpc`` or ``rest``.
        address: ``host:port`` of the server's gRPC or REST port.
        concurrency: Requests in flight.
        seconds: How long new requests are started.

    Returns:
        The result dict (see the module docstring).

    Raises:
        ValueError: A bad target, concurrency or duration.
    """
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    return asyncio.run(_once(spec, target, address, concurrency, seconds))


def write_spec(path: str, spec: dict) -> None:
    """Writes a request spec atomically."""
    from llm_tf.io_utils import atomic_write_json

    atomic_write_json(path, spec)


def main(argv: list[str] | None = None) -> None:
    """Parses flags, runs one measurement (or serves ``--commands``), prints JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="request spec JSON (benchmarks.serving_load.make_spec)")
    parser.add_argument("--commands", action="store_true", help="serve JSON commands from stdin")
    parser.add_argument("--target", choices=TARGETS, default="grpc")
    parser.add_argument("--address", default="localhost:8500", help="host:port of the gRPC or REST server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        parser.exit(2, f"serving_load: error: --spec={args.spec}: cannot read: {e}\n")
    if args.commands:
        asyncio.run(_serve_commands(spec))
        return
    try:
        print(json.dumps(asyncio.run(_once(spec, args.target, args.address, args.concurrency, args.seconds))))
    except ValueError as e:
        parser.exit(2, f"serving_load: error: {e}\n")


if __name__ == "__main__":
    main()
