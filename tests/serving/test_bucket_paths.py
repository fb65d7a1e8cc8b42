"""Serving from a bucket: TensorFlow's in-memory ``ram://`` file system stands in for ``gs://``
(a real non-local gfile file system, no network). The embedded server runs in-process; the
error path of ``llm_serve`` runs as the console script."""

import os
import shutil
import subprocess
import sys
import time
import uuid

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from llm_tf import io_utils
from llm_tf.errors import ConfigError
from llm_tf.serving import config_files
from llm_tf.serving.config import BatchingSpec, ModelSpec, MonitoringSpec
from llm_tf.serving.model_manager import scan_versions
from llm_tf.serving.server import EmbeddedServer, ServerOptions

EMBEDDED_ONLY = pytest.mark.skipif(bool(os.environ.get("TF_SERVING_BIN")), reason="ram:// is in this process only")


def _ram(name: str) -> str:
    return f"ram://serving-{uuid.uuid4().hex}/{name}"


def _push(model_store: str, version: int, base: str, as_version: int) -> str:
    """Copies a version onto the bucket as the Pusher does: file by file, ``saved_model.pb`` last."""
    target = f"{base}/{as_version}"
    written = io_utils.copy_tree(os.path.join(model_store, str(version)), target, last=("saved_model.pb",))
    assert written[-1] == f"{target}/saved_model.pb"
    return target


def _predict(port: int) -> tuple[int, float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"some text"], dtype=tf.string))
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return response.model_spec.version.value, float(tf.make_ndarray(response.outputs["scores"])[0, 1])


@EMBEDDED_ONLY
def test_the_embedded_server_serves_a_bucket_base_path_and_picks_up_a_new_version(model_store):
    base = _ram("models/m")
    _push(model_store, 1, base, 1)
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=base,
                                          file_system_poll_wait_seconds=0.2, ready_timeout=60))
    server.start()
    try:
        assert server.manager.available_versions("m") == [1]
        assert _predict(server.grpc_port)[0] == 1
        _push(model_store, 2, base, 2)
        deadline = time.monotonic() + 60
        while server.manager.available_versions("m") != [2] and time.monotonic() < deadline:
            time.sleep(0.1)
        version, score = _predict(server.grpc_port)
        assert version == 2 and score > 0.5  # version 2's bias
    finally:
        server.stop(grace=0)


def test_a_version_being_copied_is_listed_once_its_saved_model_pb_is_there(model_store):
    base = _ram("models/m")
    source = os.path.join(model_store, "1")
    for name in ("variables/variables.index", "variables/variables.data-00000-of-00001"):
        tf.io.gfile.makedirs(f"{base}/3/variables")
        tf.io.gfile.copy(os.path.join(source, name), f"{base}/3/{name}")
    tf.io.gfile.makedirs(f"{base}/.4.partial")
    assert scan_versions(base) == {}
    tf.io.gfile.copy(os.path.join(source, "saved_model.pb"), f"{base}/3/saved_model.pb")
    assert scan_versions(base + "/") == {3: f"{base}/3"}
    assert scan_versions(_ram("missing")) == {}


def test_base_path_checks_accept_a_bucket_and_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^--model_base_path: ram://.*/nope does not exist or is not a directory$"):
        EmbeddedServer(ServerOptions(model_name="m", model_base_path=_ram("nope")))
    with pytest.raises(ConfigError, match=r"^--model_base_path: nope://x: TensorFlow has no file system for 'nope://'"):
        EmbeddedServer(ServerOptions(model_name="m", model_base_path="nope://x"))
    assert os.listdir(tmp_path) == []


def test_config_files_are_written_to_and_read_from_a_bucket(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory, base = _ram("config"), _ram("models/m")
    specs = [ModelSpec("m", base, version_policy="all")]
    paths = config_files.write_serving_configs(directory, specs, BatchingSpec(), MonitoringSpec())
    assert paths["model_config_file"] == f"{directory}/models.config"
    assert sorted(tf.io.gfile.listdir(directory)) == ["batching_parameters.txt", "models.config", "monitoring.config"]
    assert config_files.load_model_config(paths["model_config_file"]) == specs
    assert config_files.load_batching_parameters(paths["batching_parameters_file"]) == BatchingSpec()
    with pytest.raises(ConfigError, match=r"^ram://.*/config/missing\.config: no such file$"):
        config_files.load_model_config(f"{directory}/missing.config")
    with pytest.raises(ConfigError, match=r"^ram://.*/config: is a directory"):
        config_files.load_model_config(directory)
    assert os.listdir(tmp_path) == []


def test_llm_serve_with_a_scheme_tensorflow_cannot_open_is_one_line_and_writes_nothing(tmp_path):
    executable = shutil.which("llm_serve") or os.path.join(os.path.dirname(sys.executable), "llm_serve")
    env = {k: v for k, v in os.environ.items() if k != "TF_SERVING_BIN"}
    env.update(PATH="/usr/bin:/bin", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([executable, "--model_base_path=nope://x"], capture_output=True, text=True, timeout=120,
                            env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("llm_serve: error: --model_base_path: nope://x: TensorFlow has no file system "
                                     "for 'nope://' here"), result.stderr
    assert os.listdir(tmp_path) == []
