"""Served int8 vs the SavedModel: ``llm_serve --prefer_tflite_model`` against the same model as a SavedModel.

Exports a trained classifier twice with ``llm_export``'s library call: a plain SavedModel version,
and one with ``--tflite_model`` (``model.tflite``, the token form, default dynamic int8) beside it.
Starts the embedded server on each (the second with ``--prefer_tflite_model``), and drives them
over gRPC from the separate load-generator process of ``benchmarks/serving_load.py``:

* ``savedmodel_tokens``: the SavedModel's ``predict_tokens``, one sentence a request, tokenized
  by the benchmark and cut to the sentence's own length (the ``model.tflite`` file takes any
  length: ``llm_export`` converts it with ``dynamic_length``);
* ``tflite_tokens``: the same requests to the ``model.tflite`` version;
* ``savedmodel_text``: the SavedModel's ``serving_default`` on the raw sentence, as users call it.

Requests/s and p50/p99 latency at each concurrency, configurations interleaved round by round;
the target ratio (tflite / savedmodel tokens at the highest concurrency) is taken per round.
Accuracy: every SST-2 dev sentence through each served version (batches of 32 over gRPC).

    python -m benchmarks.served_tflite --model_dir=runs/sst2_minilm_s42 --seconds=10 --rounds=3

Writes ``benchmarks/results/<output>.{json,md,png}`` (default ``served_tflite``).
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import common, serving, serving_load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = serving.MODEL
TOKENS_OUTPUTS = ["label_ids", "logits", "scores"]
CONFIGS = ("savedmodel_tokens", "tflite_tokens", "savedmodel_text")


class Server(serving.Server):
    """``llm_serve --backend=embedded`` on free ports with extra flags (the TFLite ones)."""

    def __init__(self, model_base_path: str, extra: list[str]):  # noqa: D107 - same as the parent's
        from tests.serving.conftest import free_port

        self.grpc_port, self.rest_port = free_port(), free_port()
        binary = os.path.join(os.path.dirname(sys.executable), "llm_serve")
        argv = [binary, "--backend=embedded", f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                f"--model_name={MODEL}", f"--model_base_path={model_base_path}",
                "--file_system_poll_wait_seconds=0", *extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def token_spec(packed: dict) -> dict:
    """A load-generator spec: one ``predict_tokens`` request per sentence (int32 [1, its own length])."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from llm_tf.export.tflite_runtime import trim_token_inputs

    requests, bodies = [], []
    for i in range(len(packed["token_ids"])):
        row = trim_token_inputs({key: value[i:i + 1] for key, value in packed.items()})
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.signature_name = "predict_tokens"
        for key, value in row.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        requests.append(base64.b64encode(request.SerializeToString()).decode("ascii"))
        bodies.append(json.dumps({"signature_name": "predict_tokens",
                                  "instances": [{k: v[0].tolist() for k, v in row.items()}]}))
    spec = serving_load.make_spec(MODEL, ["x"], TOKENS_OUTPUTS)
    spec.update(grpc_requests=requests, rest_bodies=bodies)
    return spec


def served_accuracy(port: int, signature: str, inputs: dict, gold: np.ndarray, batch: int = 32) -> dict:
    """Accuracy of a served version on every sentence (label_ids vs the gold ids), batches over gRPC."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"localhost:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        predicted = []
        for start in range(0, len(gold), batch):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value[start:start + batch]))
            response = stub.Predict(request, timeout=120)
            predicted.append(tf.make_ndarray(response.outputs["label_ids"]).astype(np.int64))
    predicted = np.concatenate(predicted)
    return {"accuracy": float(np.mean(predicted == gold)), "sentences": len(gold)}


def export_twice(model_dir: str, directory: str, variant: str) -> tuple[str, str, dict]:
    """Exports ``model_dir`` as a SavedModel version and as one with model.tflite; returns both base paths."""
    from llm_tf.export import exporter

    plain = os.path.join(directory, "savedmodel")
    with_tflite = os.path.join(directory, "tflite")
    exporter.export_saved_model(model_dir, plain, version=1)
    result = exporter.export_saved_model(model_dir, with_tflite, version=1, tflite_model=variant)
    return plain, with_tflite, result.tflite_model


def plot(results: dict, concurrency: list[int], path: str) -> None:
    """Requests/s and p99 by concurrency, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in CONFIGS:
        left.plot(concurrency, [results[name][str(c)]["qps"]["median"] for c in concurrency], marker="o", label=name)
        right.plot(concurrency, [results[name][str(c)]["p99_ms"]["median"] for c in concurrency], marker="o",
                   label=name)
    left.set(xlabel="concurrency", ylabel="requests/s (median of rounds)", xscale="log", title="throughput")
    right.set(xlabel="concurrency", ylabel="p99 ms", xscale="log", title="p99 latency")
    left.legend()
    common.save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default=os.path.join(ROOT, "runs", "sst2_minilm_s42"))
    parser.add_argument("--variant", default="dynamic_int8", choices=["float32", "float16", "dynamic_int8"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--num_tflite_pools", type=int, default=None, help="default: TF Serving's, the CPU count")
    parser.add_argument("--num_tflite_interpreters_per_pool", type=int, default=1)
    parser.add_argument("--eval_limit", type=int, default=0, help="dev sentences for accuracy (0: all)")
    parser.add_argument("--output", default="served_tflite")
    parser.add_argument("--results_dir", default=common.RESULTS)
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]

    from llm_tf.export import export_dir
    from llm_tf.export.representative import read_text_file

    machine = dict(common.machine_info(), load_average_before=common.load_average())
    _, source = serving.load_sentences()
    dev = read_text_file(source, args.eval_limit or None)
    directory = tempfile.mkdtemp(prefix="served_tflite-")
    plain, with_tflite, tflite_facts = export_twice(args.model_dir, directory, args.variant)
    exported = export_dir.load_exported(os.path.join(plain, "1"))
    packed = exported.tokenize(dev.texts)
    label_index = {name: i for i, name in enumerate(exported.labels)}
    gold = np.array([label_index[label] for label in dev.labels])
    specs = {"tokens": os.path.join(directory, "tokens.json"), "text": os.path.join(directory, "text.json")}
    serving_load.write_spec(specs["tokens"], token_spec(packed))
    serving_load.write_spec(specs["text"], serving_load.make_spec(MODEL, dev.texts, ["label_ids", "labels", "scores"]))

    tflite_flags = ["--prefer_tflite_model",
                    f"--num_tflite_interpreters_per_pool={args.num_tflite_interpreters_per_pool}"]
    if args.num_tflite_pools is not None:
        tflite_flags.append(f"--num_tflite_pools={args.num_tflite_pools}")
    servers = {"savedmodel": Server(plain, []), "tflite": Server(with_tflite, tflite_flags)}
    plan = {"savedmodel_tokens": ("savedmodel", "tokens"), "tflite_tokens": ("tflite", "tokens"),
            "savedmodel_text": ("savedmodel", "text")}
    loads = {kind: serving_load.LoadProcess(path) for kind, path in specs.items()}
    runs: dict = {name: {str(c): [] for c in concurrency} for name in CONFIGS}
    try:
        for server in servers.values():
            server.wait_ready()
        ports = {name: server.grpc_port for name, server in servers.items()}
        accuracy = {"savedmodel_tokens": served_accuracy(ports["savedmodel"], "predict_tokens", packed, gold),
                    "tflite_tokens": served_accuracy(ports["tflite"], "predict_tokens", packed, gold),
                    "savedmodel_text": served_accuracy(servers["savedmodel"].grpc_port, "serving_default",
                                                       {"text": np.array(dev.texts, dtype=object)}, gold)}
        for name, (server, kind) in plan.items():  # one short warm-up run each
            loads[kind].run("grpc", f"localhost:{servers[server].grpc_port}", max(concurrency), min(1.0, args.seconds))
        for round_index in range(args.rounds):
            for c in concurrency:
                for name, (server, kind) in plan.items():
                    result = loads[kind].run("grpc", f"localhost:{servers[server].grpc_port}", c, args.seconds)
                    if result["errors"]:
                        raise RuntimeError(f"{name} at concurrency {c}: {result['errors']} errors, "
                                           f"first: {result['first_error']}")
                    runs[name][str(c)].append(result)
                    print(f"round {round_index + 1} {name} c={c}: {result['qps']:.1f}/s p99 {result['p99_ms']:.1f} ms",
                          file=sys.stderr)
    finally:
        for load in loads.values():
            load.close()
        for server in servers.values():
            server.stop()
    machine["load_average"] = common.load_average()
    summary = {name: {c: serving.summarize(r) for c, r in by_c.items()} for name, by_c in runs.items()}
    top = str(max(concurrency))
    ratio = common.ratio_summary([r["qps"] for r in runs["tflite_tokens"][top]],
                                 [r["qps"] for r in runs["savedmodel_tokens"][top]])
    delta = 100 * (accuracy["tflite_tokens"]["accuracy"] - accuracy["savedmodel_tokens"]["accuracy"])
    result = {"machine": machine, "args": vars(args), "tflite_model": tflite_facts, "sentences_source": source,
              "accuracy": accuracy, "accuracy_delta_points": delta, f"qps_ratio_tflite_vs_savedmodel_c{top}": ratio,
              "results": summary, "target": {"qps_ratio": 2.0, "accuracy_points": 0.5,
                                             "met": ratio["median"] >= 2.0 and abs(delta) <= 0.5}}
    plot(summary, concurrency, os.path.join(args.results_dir, f"{args.output}.png"))
    common.write_results(args.output, result, markdown(result, concurrency), args.results_dir)


def markdown(result: dict, concurrency: list[int]) -> str:
    """The results file's text."""
    m, top = result["machine"], str(max(concurrency))
    ratio = result[f"qps_ratio_tflite_vs_savedmodel_c{top}"]
    lines = ["# Served TFLite (--prefer_tflite_model) vs the SavedModel", "",
             common.machine_line(m, f"; TF {m['tensorflow']}"),
             f"`python -m benchmarks.served_tflite {' '.join(f'--{k}={v}' for k, v in result['args'].items())}`", "",
             f"model.tflite: {result['tflite_model']['variant']}, {result['tflite_model']['bytes']:,} bytes. "
             f"Embedded server over gRPC, one sentence a request, {result['args']['rounds']} interleaved rounds.", "",
             "| configuration | concurrency | requests/s (median, min-max) | p50 ms | p99 ms |",
             "|---|---|---|---|---|"]
    for name in CONFIGS:
        for c in concurrency:
            s = result["results"][name][str(c)]
            qps = s["qps"]
            lines.append(f"| {name} | {c} | {qps['median']:.1f} ({qps['min']:.1f}-{qps['max']:.1f}) | "
                         f"{s['p50_ms']['median']:.1f} | {s['p99_ms']['median']:.1f} |")
    lines += ["", f"**tflite / savedmodel tokens at concurrency {top}: {ratio['median']:.2f}x** "
              f"(rounds {', '.join(f'{r:.2f}' for r in ratio['runs'])}; target 2x).", "",
              "| served version | SST-2 dev accuracy |", "|---|---|"]
    for name, acc in result["accuracy"].items():
        lines.append(f"| {name} | {100 * acc['accuracy']:.2f}% ({acc['sentences']} sentences) |")
    lines += ["", f"Accuracy delta (tflite - savedmodel): {result['accuracy_delta_points']:+.2f} points "
              "(target: within 0.5). "
              f"Target met: {result['target']['met']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"done in {time.time() - start:.0f} s", file=sys.stderr)
