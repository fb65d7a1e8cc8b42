"""Served predictions equal in-process ones: a model over gRPC (embedded server) vs the same SavedModel loaded here.

Starts :class:`llm_tf.serving.server.EmbeddedServer` on free ports for a model base path,
sends every sentence of an eval file through :class:`llm_tf.serving.client.ServingClient`
(``--batch_size`` texts a request; 1 by default: each sentence alone, as a phone app or a web
request would), and runs the same sentences through the latest version's ``serving_default``
signature in this process. Reports, per output, the largest absolute difference, how many
predicted labels agree, and the accuracy of each side against the file's labels.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.served_parity --model_base_path=runs/distill/export/student \\
        --eval_data=../shared/data/sst2/dev.tsv --results_dir=benchmarks/results/distillation

Results: ``<results_dir>/served_parity.{json,md}``. Exit 1 when a label differs.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", required=True, help="An llm_export base path (numbered versions).")
    parser.add_argument("--model_name", default="model", help="The name the server serves it under.")
    parser.add_argument("--eval_data", default="../shared/data/sst2/dev.tsv",
                        help="TSV with a header (sentence, label).")
    parser.add_argument("--batch_size", type=int, default=1, help="Texts per Predict request.")
    parser.add_argument("--results_dir", default=common.RESULTS, help="Where served_parity.{json,md} go.")
    return parser.parse_args(argv)


def compare(served: list[dict], local: dict[str, np.ndarray], labels: list[str] | None, names: list[str]) -> dict:
    """Differences between served rows and in-process outputs (same order).

    Args:
        served: One dict per text from ``ServingClient.predict_texts``.
        local: Output name -> array [texts, ...] from the in-process signature (its class
            scores: ``scores``, ``probabilities`` or ``logits``).
        labels: Gold labels (label names) or None.
        names: The model's label names in id order (``label`` outputs are compared by name).

    Returns:
        ``{"count", "outputs": {name: {"max_abs_diff"}}, "label_agreement", "served_accuracy",
        "local_accuracy"}``.
    """
    out = {"count": len(served), "outputs": {}}
    for name, values in local.items():
        if values.dtype.kind in "fiu":
            theirs = np.array([row[name] for row in served], dtype=np.float64)
            out["outputs"][name] = {"max_abs_diff": float(np.max(np.abs(theirs - values.astype(np.float64))))}
    scores = next(name for name in ("scores", "probabilities", "logits") if name in local)
    local_ids = np.argmax(local[scores], axis=-1)
    served_ids = np.argmax(np.array([row[scores] for row in served]), axis=-1)
    out["label_agreement"] = float(np.mean(local_ids == served_ids))
    out["label_differences"] = int(np.sum(local_ids != served_ids))
    if labels is not None:
        gold = np.array([names.index(label) if label in names else -1 for label in labels])
        out["local_accuracy"] = float(np.mean(local_ids == gold))
        out["served_accuracy"] = float(np.mean(served_ids == gold))
    return out


def measure(args: argparse.Namespace) -> dict:
    """Serves the model, sends every text, runs them in process, compares."""
    import tensorflow as tf

    from llm_tf.data.labels import load_labels
    from llm_tf.export.export_dir import existing_versions
    from llm_tf.export.representative import read_text_file
    from llm_tf.export.saved_model_eval import batches, load_serving_signature
    from llm_tf.serving.client import ServingClient
    from llm_tf.serving.server import EmbeddedServer, ServerOptions

    versions = existing_versions(args.model_base_path)
    if not versions:
        raise FileNotFoundError(f"{args.model_base_path}: no model version (export one with llm_export)")
    version_dir = os.path.join(args.model_base_path, str(versions[-1]))
    data = read_text_file(args.eval_data)
    names = list(load_labels(os.path.join(version_dir, "assets.extra", "labels.txt")))
    _loaded, signature = load_serving_signature(version_dir)
    local: dict[str, list] = {}
    for chunk in batches(data.texts, 64):
        outputs = signature(text=tf.constant(chunk))
        for name, value in outputs.items():
            local.setdefault(name, []).append(value.numpy())
    local_arrays = {name: np.concatenate(parts) for name, parts in local.items()}
    server = EmbeddedServer(ServerOptions(host="localhost", port=0, rest_api_port=0, model_name=args.model_name,
                                          model_base_path=os.path.abspath(args.model_base_path),
                                          file_system_poll_wait_seconds=0))
    started = time.perf_counter()
    try:
        server.start()
        with ServingClient(f"localhost:{server.grpc_port}", timeout=60) as client:
            client.wait_until_available(args.model_name, 120)
            served = client.predict_texts(args.model_name, data.texts, batch_size=args.batch_size)
    finally:
        server.stop(grace=0)
    result = compare(served, local_arrays, data.labels, names)
    result.update(version_dir=version_dir, requests=-(-len(data.texts) // args.batch_size),
                  seconds=time.perf_counter() - started)
    return result


def markdown(result: dict) -> str:
    """The results page."""
    m = result["machine"]
    lines = ["# Served predictions vs in-process predictions", "", f"Command: `{result['command']}`  ",
             common.machine_line(m, f"; TF {m['tensorflow']}"), "",
             f"Model: `{result['version_dir']}`; {result['count']} sentences in {result['requests']} gRPC Predict "
             f"requests to the embedded server ({result['seconds']:.1f} s), the same sentences through the "
             "SavedModel's `serving_default` in the benchmark's process.", "",
             f"- Predicted labels that differ: **{result['label_differences']}** of {result['count']} "
             f"(agreement {100 * result['label_agreement']:.2f}%)"]
    if "served_accuracy" in result:
        lines.append(f"- Accuracy: served {100 * result['served_accuracy']:.2f}%, in process "
                     f"{100 * result['local_accuracy']:.2f}%")
    lines += [f"- Largest absolute difference of `{name}`: {v['max_abs_diff']:.3g}"
              for name, v in result["outputs"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs the comparison and writes the results; 1 when a predicted label differs."""
    args = parse_args(argv)
    machine = common.machine_info()
    machine["load_average_before"] = machine.pop("load_average")
    result = measure(args)
    machine["load_average"] = common.load_average()
    result.update(command="python -m benchmarks.served_parity " + " ".join(argv if argv is not None else sys.argv[1:]),
                  machine=machine)
    common.write_results("served_parity", result, markdown(result), args.results_dir)
    return 0 if result["label_differences"] == 0 else 1


if __name__ == "__main__":
    from llm_tf.errors import LlmTfError

    try:
        sys.exit(main())
    except (FileNotFoundError, LlmTfError) as error:
        print(f"served_parity: error: {error}", file=sys.stderr)
        sys.exit(1)
