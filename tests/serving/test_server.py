"""Tests for llm_tf.serving.server: hot reload under load, failed versions, config reload,
batching, monitoring, limits and shutdown. Servers are started per test (start_server)."""

import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from llm_tf.errors import ConfigError
from llm_tf.serving.server import EmbeddedServer, ServerOptions
from tests.serving.conftest import copy_version, start_server, write_broken_version, write_model_config

State = get_model_status_pb2.ModelVersionStatus
EMBEDDED_ONLY = pytest.mark.skipif(bool(os.environ.get("TF_SERVING_BIN")), reason="embedded server only")


def _request(name="m", texts=(b"some text",)):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(list(texts), dtype=tf.string))
    return request


def _statuses(target, name):
    with grpc.insecure_channel(target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        return {s.version: s for s in response.model_version_status}


def _wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def servers():
    started = []

    def start(*args, **kwargs):
        running = start_server(*args, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_hot_reload_under_load_has_no_failed_request(model_store, tmp_path, servers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    running = servers(["m"], poll_seconds=1, rest=False, model_name="m", model_base_path=base)
    versions, failures, stop = [], [], threading.Event()

    def client():
        with grpc.insecure_channel(running.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    versions.append(stub.Predict(_request(), timeout=30).model_spec.version.value)
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        _wait_for(lambda: len(versions) > 5, what="first answers")
        copy_version(model_store, 2, base)  # atomically: temp name, then rename
        _wait_for(lambda: versions[-1] == 2, what="version 2 to answer")
        _wait_for(lambda: _statuses(running.target, "m")[1].state == State.END, what="version 1 to be unloaded")
        shutil.rmtree(os.path.join(base, "1"))  # retire version 1 on disk too
        answered = len(versions)
        _wait_for(lambda: len(versions) > answered + 20, what="more answers")
    finally:
        stop.set()
        thread.join(60)
    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2
    assert versions.index(2) > 0 and set(versions[versions.index(2):]) == {2}  # no flapping back


def test_broken_version_is_skipped_while_the_previous_serves(model_store, tmp_path, servers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    running = servers(["m"], poll_seconds=1, rest=False, model_name="m", model_base_path=base)
    tmp = write_broken_version(str(tmp_path), 2)
    os.rename(tmp, os.path.join(base, "2"))
    _wait_for(lambda: 2 in _statuses(running.target, "m") and _statuses(running.target, "m")[2].state == State.END,
              what="version 2 to fail")
    status = _statuses(running.target, "m")
    assert status[2].status.error_code != 0 and status[2].status.error_message
    assert status[1].state == State.AVAILABLE
    with grpc.insecure_channel(running.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(_request(), timeout=30).model_spec.version.value == 1
        copy_version(model_store, 2, base, as_version=3)
        _wait_for(lambda: stub.Predict(_request(), timeout=30).model_spec.version.value == 3, what="version 3")


def test_reload_config_over_grpc(model_store, tmp_path, servers):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    copy_version(model_store, 1, a)
    copy_version(model_store, 2, b)
    config = write_model_config(str(tmp_path / "models.config"), [{"name": "a", "base_path": a}])
    running = servers(["a"], poll_seconds=1, rest=False, model_config_file=config)
    reload = model_management_pb2.ReloadConfigRequest()
    model = reload.config.model_config_list.config.add(name="b", base_path=b, model_platform="tensorflow")
    model.version_labels["stable"] = 2
    with grpc.insecure_channel(running.target) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(reload, timeout=120)
        assert response.status.error_code == 0
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = _request("b")
        request.model_spec.version_label = "stable"
        assert stub.Predict(request, timeout=30).model_spec.version.value == 2
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request("a"), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    _wait_for(lambda: _statuses(running.target, "a")[1].state == State.END, what="model a to be unloaded")


@EMBEDDED_ONLY
def test_batching_monitoring_and_graceful_stop(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 300000 }\n"
                        "num_batch_threads { value: 1 }\n")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=-1, model_name="m", model_base_path=base,
                                          batching_parameters_file=str(batching),
                                          monitoring_config_file=str(monitoring)))
    server.start()
    results, errors_seen = [], []

    def call():
        try:
            with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                results.append(stub.Predict(_request(), timeout=30).model_spec.version.value)
        except grpc.RpcError as e:
            errors_seen.append(e.code())

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    body = b""
    try:
        def waiting_in_batch():
            with server.manager.handle("m") as servable:  # counts itself once
                return servable.in_flight >= 3

        _wait_for(waiting_in_batch, what="requests in flight")
        body = urllib.request.urlopen(f"http://localhost:{server.rest_port}/metrics", timeout=10).read()
    finally:
        server.stop(grace=10)  # the batch is still waiting for its timeout: stop lets it finish
        for thread in threads:
            thread.join(30)
    assert results == [1, 1, 1] and errors_seen == []
    # The three requests were in one batch when the page was read (they wait for the timeout).
    assert b":tensorflow:serving:loaded_versions" in body
    with pytest.raises(grpc.RpcError):
        with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(), timeout=2)


def _samples(body: bytes, name: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples
            if sample.name == name}


@EMBEDDED_ONLY
def test_metrics_count_grpc_and_rest_requests_with_their_entrypoint(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=-1, model_name="m", model_base_path=base,
                                          monitoring_config_file=str(monitoring)))
    server.start()
    try:
        with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(), timeout=30)
        rest = urllib.request.Request(f"http://localhost:{server.rest_port}/v1/models/m:predict",
                                      data=b'{"instances": ["a", "b"]}', method="POST")
        assert urllib.request.urlopen(rest, timeout=30).status == 200
        body = urllib.request.urlopen(f"http://localhost:{server.rest_port}/metrics", timeout=10).read()
    finally:
        server.stop(grace=1)
    counts = _samples(body, ":tensorflow:serving:request_count_total")  # the parser adds _total
    assert counts[(("model_name", "m"), ("status", "OK"))] == 2
    latency = {dict(k)["entrypoint"]: v for k, v in _samples(body, ":tensorflow:serving:request_latency_count").items()}
    assert latency == {"GRPC": 1, "REST": 1}


@EMBEDDED_ONLY
def test_max_message_bytes(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=-1, model_name="m", model_base_path=base,
                                          max_message_bytes=4096))
    server.start()
    try:
        url = f"http://localhost:{server.rest_port}/v1/models/m:predict"
        big = urllib.request.Request(url, data=b'{"instances": ["' + b"x" * 8192 + b'"]}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as http_info:
            urllib.request.urlopen(big, timeout=30)
        assert http_info.value.code == 413
        with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert stub.Predict(_request(), timeout=30).model_spec.version.value == 1
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(_request(texts=[b"x" * 8192]), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop()


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "no model to serve"),
    (dict(model_base_path="/does/not/exist"), "does not exist"),
    (dict(model_base_path="/tmp", model_config_file="/tmp/x.config"), "not both"),
    (dict(model_config_file="/does/not/exist.config"), "exist"),
])
def test_bad_options_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EmbeddedServer(ServerOptions(**kwargs))


def test_port_in_use_fails_start_cleanly(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen(1)
        server = EmbeddedServer(ServerOptions(port=taken.getsockname()[1], rest_api_port=0,
                                              model_name="m", model_base_path=base))
        with pytest.raises(ConfigError, match="gRPC: cannot bind localhost:.*: port in use"):
            server.start()
    assert server.manager is None  # nothing was started


def test_no_loadable_version_fails_start(tmp_path):
    base = str(tmp_path / "m")
    write_broken_version(base, 1)
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=0, model_name="m", model_base_path=base))
    started = time.monotonic()
    with pytest.raises(ConfigError, match="model m: version 1 failed to load: .*saved_model.pb: not a SavedModel"):
        server.start()
    assert time.monotonic() - started < 30  # fails at once, not after ready_timeout
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=0, model_name="e", model_base_path=empty,
                                          ready_timeout=0.5))
    with pytest.raises(ConfigError, match="model e: no loadable version under .*empty after 0.5s"):
        server.start()


def test_tensorflow_threads_split_the_cores_between_batch_threads(monkeypatch):
    from llm_tf.serving.config import BatchingSpec
    from llm_tf.serving.server import tensorflow_threads

    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    options = ServerOptions(model_base_path="/tmp")
    assert tensorflow_threads(options, None, cores=8) == (0, 0)  # no batching: TensorFlow's defaults
    assert tensorflow_threads(options, BatchingSpec(num_batch_threads=2), cores=8) == (4, 2)
    assert tensorflow_threads(options, BatchingSpec(num_batch_threads=2), cores=2) == (1, 2)
    assert tensorflow_threads(options, BatchingSpec(num_batch_threads=4), cores=2) == (1, 4)
    given = ServerOptions(model_base_path="/tmp", tensorflow_intra_op_parallelism=3, tensorflow_inter_op_parallelism=5)
    assert tensorflow_threads(given, BatchingSpec(num_batch_threads=2), cores=8) == (3, 5)
    assert tensorflow_threads(given, None, cores=8) == (3, 5)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "2")
    assert tensorflow_threads(options, BatchingSpec(num_batch_threads=2), cores=8) == (0, 0)  # the environment wins


def test_tensorflow_threads_cannot_change_once_tensorflow_runs():
    from llm_tf.serving.server import configure_tensorflow_threads

    tf.constant(1.0) + 1.0  # the runtime is up in this process
    assert configure_tensorflow_threads(0, 0)
    current = tf.config.threading.get_intra_op_parallelism_threads()
    assert not configure_tensorflow_threads(current + 1, 0)
    assert tf.config.threading.get_intra_op_parallelism_threads() == current
