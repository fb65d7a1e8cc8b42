"""Serving fixtures: tiny SavedModels that follow the export contract, and a running server.

The models are ``tf.Module`` s saved with ``tf.saved_model.save`` (no training, no weights):

* ``serving_default(text: string [None])`` -> ``scores`` float32 [None, 2] (softmax of a score
  that grows with the text's length), ``label_ids`` int64 [None], ``labels`` string [None];
* ``predict_tokens(token_ids, segment_ids, padding_mask: int32 [None, None])`` -> ``logits``,
  ``scores``, ``label_ids``;
* ``classify(inputs: string [None])`` over serialized ``tf.Example`` (feature ``text``) ->
  ``classes`` string [None, 2], ``scores`` float32 [None, 2]; ``method_name`` rewritten to
  ``tensorflow/serving/classify`` in ``saved_model.pb``;
* ``regress(inputs)`` -> ``outputs`` float32 [None] (the text's length), method
  ``tensorflow/serving/regress`` (not in the export contract; it exercises Regress);
* warm-up records (one predict and one classify log) in ``assets.extra``.

Versions differ by a bias, so a test can tell them apart from scores as well as from
``model_spec.version``.

``server`` runs the embedded server on free ports, or, when ``TF_SERVING_BIN`` names a
``tensorflow_model_server`` binary, that binary with the same flags; tests talk to it through
the official stubs only, so they hold for both.
"""

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time

import grpc
import pytest

from llm_tf.export.exporter import set_method_names

LABELS = ("negative", "positive")
MODEL_NAME = "tiny"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


# ----------------------------------------------------------------------------- models
def _build_module(bias: float):
    import tensorflow as tf

    class TinyTextModel(tf.Module):
        """Scores a text by its length; label 1 ("positive") for texts longer than 10 chars."""

        def __init__(self):
            super().__init__()
            self.bias = tf.Variable(bias, dtype=tf.float32, trainable=False)
            self.label_table = tf.constant(list(LABELS))

        def _logits(self, length):
            length = tf.cast(length, tf.float32)
            return tf.stack([tf.zeros_like(length), (length - 10.0) / 5.0 + self.bias], axis=1)

        def _head(self, logits):
            scores = tf.nn.softmax(logits, axis=-1)
            label_ids = tf.argmax(scores, axis=-1, output_type=tf.int64)
            return scores, label_ids

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            scores, label_ids = self._head(self._logits(tf.strings.length(text)))
            return {"scores": scores, "label_ids": label_ids, "labels": tf.gather(self.label_table, label_ids)}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                                      tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
                                      tf.TensorSpec([None, None], tf.int32, name="padding_mask")])
        def predict_tokens(self, token_ids, segment_ids, padding_mask):
            logits = self._logits(tf.reduce_sum(padding_mask, axis=1))
            scores, label_ids = self._head(logits)
            return {"logits": logits, "scores": scores, "label_ids": label_ids}

        def _texts(self, serialized):
            features = tf.io.parse_example(serialized, {"text": tf.io.FixedLenFeature([], tf.string)})
            return features["text"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            scores, _ = self._head(self._logits(tf.strings.length(self._texts(inputs))))
            classes = tf.tile(self.label_table[tf.newaxis], [tf.shape(scores)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": tf.cast(tf.strings.length(self._texts(inputs)), tf.float32) + self.bias}

    return TinyTextModel()


def example_bytes(text: str) -> bytes:
    """A serialized ``tf.Example`` with the bytes feature ``text``."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
    return example.SerializeToString()


def _write_warmup(path: str) -> None:
    import tensorflow as tf
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    predict = prediction_log_pb2.PredictionLog()
    predict.predict_log.request.model_spec.name = MODEL_NAME
    predict.predict_log.request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"warm up request"]))
    classify = prediction_log_pb2.PredictionLog()
    classify.classify_log.request.model_spec.name = MODEL_NAME
    classify.classify_log.request.model_spec.signature_name = "classify"
    classify.classify_log.request.input.example_list.examples.add().CopyFrom(
        example_pb2.Example.FromString(example_bytes("warm up")))
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")) as writer:
        writer.write(predict.SerializeToString())
        writer.write(classify.SerializeToString())


def save_tiny_model(path: str, bias: float = 0.0, warmup: bool = True) -> str:
    """Saves the tiny model as a TF Serving version directory at ``path``; returns ``path``."""
    import tensorflow as tf

    module = _build_module(bias)
    signatures = {
        "serving_default": module.serve,
        "predict_tokens": module.predict_tokens,
        "classify": module.classify,
        "regress": module.regress,
    }
    tf.saved_model.save(module, path, signatures=signatures)
    set_method_names(path, {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD})
    if warmup:
        _write_warmup(path)
    return path


@pytest.fixture(scope="session")
def model_store(tmp_path_factory) -> str:
    """A read-only directory with versions ``1`` (bias 0) and ``2`` (bias 2) of the tiny model.

    Copy versions out of it (:func:`copy_version`); never write into it.
    """
    root = tmp_path_factory.mktemp("model_store")
    save_tiny_model(str(root / "1"), bias=0.0)
    save_tiny_model(str(root / "2"), bias=2.0)
    return str(root)


def copy_version(model_store: str, version: int, base_path: str, as_version: int | None = None) -> str:
    """Copies a version into ``base_path`` atomically (temp name, then rename); returns its path."""
    os.makedirs(base_path, exist_ok=True)
    final = os.path.join(base_path, str(as_version if as_version is not None else version))
    tmp = os.path.join(base_path, f".{os.path.basename(final)}.partial")
    shutil.copytree(os.path.join(model_store, str(version)), tmp)
    os.rename(tmp, final)
    return final


def write_broken_version(base_path: str, version: int) -> str:
    """Writes a version directory whose ``saved_model.pb`` is garbage; returns its path."""
    path = os.path.join(base_path, str(version))
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"\x08this is not a saved model\xff\xff\xff")
    return path


# ----------------------------------------------------------------------------- servers
def free_port() -> int:
    """A currently free TCP port on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def write_model_config(path: str, models: list[dict]) -> str:
    """Writes a ``ModelServerConfig`` text proto; each model: name, base_path, policy, labels."""
    lines = ["model_config_list {"]
    for model in models:
        lines += ["  config {", f'    name: "{model["name"]}"', f'    base_path: "{model["base_path"]}"',
                  '    model_platform: "tensorflow"']
        policy = model.get("policy", "latest")
        if policy == "all":
            lines.append("    model_version_policy { all {} }")
        elif policy == "specific":
            versions = " ".join(f"versions: {v}" for v in model["versions"])
            lines.append(f"    model_version_policy {{ specific {{ {versions} }} }}")
        else:
            lines.append(f"    model_version_policy {{ latest {{ num_versions: {model.get('num_versions', 1)} }} }}")
        for label, version in model.get("labels", {}).items():
            lines.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        lines.append("  }")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


@dataclasses.dataclass
class RunningServer:
    """A server under test: its ports, a channel to it, and how to stop it."""

    grpc_port: int
    rest_port: int
    stop: object
    embedded: object = None  # the EmbeddedServer, None for the real binary

    @property
    def target(self) -> str:
        return f"localhost:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.rest_port}"


def wait_available(target: str, names: list[str], timeout: float = 120.0, process=None) -> None:
    """Waits until every model in ``names`` reports a version AVAILABLE over gRPC."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        pending = list(names)
        while pending:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"tensorflow_model_server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"models {pending} not AVAILABLE after {timeout}s")
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = pending[0]
            try:
                response = stub.GetModelStatus(request, timeout=5)
                if any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                       for s in response.model_version_status):
                    pending.pop(0)
                    continue
            except grpc.RpcError:
                pass
            time.sleep(0.2)


def start_server(model_names: list[str], poll_seconds: float = 1.0, rest: bool = True,
                 **flags) -> RunningServer:
    """Starts the server under test with ``tensorflow_model_server``-style flags.

    Args:
        model_names: Models to wait for (AVAILABLE).
        poll_seconds: ``--file_system_poll_wait_seconds``.
        rest: Serve REST on a free port too.
        **flags: ``model_name``, ``model_base_path``, ``model_config_file``,
            ``enable_batching``, ``batching_parameters_file``, ``monitoring_config_file``.
    """
    binary = os.environ.get("TF_SERVING_BIN")
    if binary:
        grpc_port, rest_port = free_port(), free_port() if rest else 0
        argv = [binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                f"--file_system_poll_wait_seconds={poll_seconds:g}"]
        for key, value in flags.items():
            if isinstance(value, bool):
                argv.append(f"--{key}={'true' if value else 'false'}")
            elif value is not None:
                argv.append(f"--{key}={value}")
        process = subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr)

        def stop():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

        try:
            wait_available(f"localhost:{grpc_port}", model_names, process=process)
        except BaseException:
            stop()
            raise
        return RunningServer(grpc_port, rest_port, stop)

    from llm_tf.serving.server import EmbeddedServer, ServerOptions

    options = ServerOptions(port=0, rest_api_port=-1 if rest else 0, file_system_poll_wait_seconds=poll_seconds,
                            ready_timeout=120, **flags)
    server = EmbeddedServer(options)
    server.start()
    return RunningServer(server.grpc_port, server.rest_port, lambda: server.stop(grace=1), embedded=server)


@pytest.fixture(scope="session")
def served_models(model_store, tmp_path_factory) -> dict:
    """Base paths and config of the session server: ``tiny`` serves versions 1 and 2 (policy
    ``all``, labels ``stable`` -> 1 and ``canary`` -> 2); ``tiny_latest`` serves only 2."""
    root = tmp_path_factory.mktemp("served")
    tiny = str(root / "tiny")
    latest = str(root / "tiny_latest")
    for version in (1, 2):
        copy_version(model_store, version, tiny)
        copy_version(model_store, version, latest)
    models = [
        {"name": MODEL_NAME, "base_path": tiny, "policy": "all", "labels": {"stable": 1, "canary": 2}},
        {"name": "tiny_latest", "base_path": latest},
    ]
    config_file = write_model_config(str(root / "models.config"), models)
    return {"tiny": tiny, "tiny_latest": latest, "config_file": config_file, "models": models}


@pytest.fixture(scope="session")
def server(served_models) -> RunningServer:
    """A server (gRPC + REST on free ports) serving ``served_models``; shared by the session.

    Do not reload its config; tests that change models start their own with
    :func:`start_server`.
    """
    running = start_server([MODEL_NAME, "tiny_latest"], poll_seconds=1.0,
                           model_config_file=served_models["config_file"])
    yield running
    running.stop()


@pytest.fixture(scope="session")
def channel(server):
    """A gRPC channel to ``server``."""
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@pytest.fixture(scope="session")
def prediction_stub(channel):
    """``PredictionServiceStub`` on ``server``."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_stub(channel):
    """``ModelServiceStub`` on ``server``."""
    from tensorflow_serving.apis import model_service_pb2_grpc

    return model_service_pb2_grpc.ModelServiceStub(channel)
