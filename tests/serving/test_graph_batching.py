"""Tests for llm_tf/serving/graph_batching.py (``--batching_engine=tensorflow``) and its wiring.

Batching is shown deterministically: with a batch timeout far longer than the test, a batch
runs only when it is full, so requests that together fill ``max_batch_size`` come back at once
only if the op merged them, and ``on_batch`` (fed by the batch size the graph itself saw)
reports one batch of exactly that many rows.
"""

import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

from llm_tf.errors import ConfigError
from llm_tf.serving import errors
from llm_tf.serving.batching import BatchScheduler
from llm_tf.serving.config import BatchingSpec
from llm_tf.serving.graph_batching import GraphBatcher, graph_batcher
from llm_tf.serving.servable import Servable
from llm_tf.serving.server import EmbeddedServer, ServerOptions, check_batching_engine
from tests.serving.conftest import copy_version, example_bytes, start_server

EMBEDDED_ONLY = pytest.mark.skipif(bool(os.environ.get("TF_SERVING_BIN")), reason="embedded server only")
LONG = 30_000_000  # batch_timeout_micros no test waits for: a batch runs when full


def _texts(i: int, rows: int) -> np.ndarray:
    return np.array([b"x" * (3 * i + r) for r in range(rows)], dtype=object)


def _concurrently(calls):
    """Runs every call from its own thread at the same moment; results (or exceptions) in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(i):
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture(scope="module")
def unbatched(model_store):
    """Version 1 without batching: the reference answers."""
    loaded = Servable("tiny", 1, os.path.join(model_store, "1"))
    yield loaded
    loaded.close()


def _graph_servable(model_store, version=1, sizes=None, **spec):
    values = dict(max_batch_size=8, batch_timeout_micros=LONG, num_batch_threads=1)
    values.update(spec)
    return Servable("tiny", version, os.path.join(model_store, str(version)), batching=BatchingSpec(**values),
                    on_batch=None if sizes is None else sizes.append, batching_engine="tensorflow")


def _assert_same(result, expected):
    assert sorted(result) == sorted(expected)
    for alias, value in expected.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(result[alias], value, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(result[alias], value)


def test_fixed_shape_signatures_batch_in_graph_variable_ones_in_python(model_store):
    loaded = _graph_servable(model_store)
    try:
        kinds = {name: type(scheduler) for name, scheduler in loaded._schedulers.items()}
    finally:
        loaded.close()
    assert kinds == {"serving_default": GraphBatcher, "classify": GraphBatcher, "regress": GraphBatcher,
                     "predict_tokens": BatchScheduler}  # token_ids [batch, seq]: the op cannot concatenate
    function = tf.saved_model.load(os.path.join(model_store, "1")).signatures["predict_tokens"]
    assert graph_batcher(function, BatchingSpec()) is None
    with pytest.raises(ValueError, match="variable shape after the batch axis"):
        GraphBatcher(function, BatchingSpec())


def test_requests_that_fill_a_batch_run_as_one_and_get_their_own_rows(model_store, unbatched):
    sizes = []
    loaded = _graph_servable(model_store, sizes=sizes)
    rows = [1, 1, 2, 1, 1, 2]  # 8 rows: exactly max_batch_size
    try:
        started = time.monotonic()
        results = _concurrently([lambda i=i, n=n: loaded.run("", {"text": _texts(i, n)}) for i, n in enumerate(rows)])
        elapsed = time.monotonic() - started
    finally:
        loaded.close()
    for i, n in enumerate(rows):
        assert not isinstance(results[i], Exception), results[i]
        _assert_same(results[i], unbatched.run("", {"text": _texts(i, n)}))
    assert sizes == [8]  # one batch, reported once (by the request holding row 0)
    assert elapsed < 20  # a partial batch would have waited for the 30 s timeout


def test_many_threads_get_the_unbatched_answers(model_store, unbatched):
    sizes = []
    loaded = _graph_servable(model_store, sizes=sizes, batch_timeout_micros=50_000, num_batch_threads=2)
    rows = [1 + i % 3 for i in range(24)]
    try:
        results = _concurrently([lambda i=i, n=n: loaded.run("", {"text": _texts(i, n)}) for i, n in enumerate(rows)])
        regress = _concurrently([lambda i=i: loaded.run("regress", {"inputs": np.array(
            [example_bytes("a" * i)], dtype=object)}) for i in range(8)])
    finally:
        loaded.close()
    for i, n in enumerate(rows):
        assert not isinstance(results[i], Exception), results[i]
        _assert_same(results[i], unbatched.run("", {"text": _texts(i, n)}))
    assert [r["outputs"].tolist() for r in regress] == [[float(i)] for i in range(8)]
    assert sum(sizes) == sum(rows) + 8 and max(sizes) > 1 and max(sizes) <= 8


def test_versions_and_signatures_never_share_a_batch(model_store):
    # tf.nondifferentiable_batch_function names every queue "batch/": two functions would meet in
    # one queue and a batch would run whichever function its last request brought.
    sizes_1, sizes_2 = [], []
    v1 = _graph_servable(model_store, 1, sizes_1, max_batch_size=4)
    v2 = _graph_servable(model_store, 2, sizes_2, max_batch_size=4)
    try:
        calls = [lambda s=s: s.run("", {"text": np.array([b"same text"], dtype=object)}) for s in (v1, v2) * 4]
        results = _concurrently(calls)
    finally:
        v1.close()
        v2.close()
    scores = [r["scores"][0, 1] for r in results]
    assert len({round(float(s), 6) for s in scores[0::2]}) == 1 and len({round(float(s), 6) for s in scores[1::2]}) == 1
    assert scores[1] > scores[0]  # version 2 adds a bias of 2 to the positive logit
    assert sizes_1 == [4] and sizes_2 == [4]


def test_padding_errors_zero_rows_and_close(model_store, unbatched):
    sizes = []
    loaded = _graph_servable(model_store, sizes=sizes, batch_timeout_micros=0, allowed_batch_sizes=(4, 8))
    try:
        _assert_same(loaded.run("", {"text": _texts(1, 1)}), unbatched.run("", {"text": _texts(1, 1)}))
        assert sizes == [4]  # padded up to the first allowed size, as TF Serving does
        with pytest.raises(errors.ServingError, match="Task size 9 is larger than maximum input batch size 8") as info:
            loaded.run("", {"text": _texts(0, 9)})
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(errors.ServingError) as info:  # the model's own error, its own code, as unbatched
            loaded.run("classify", {"inputs": np.array([b"not a tf.Example"], dtype=object)})
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "{{node" not in info.value.message
        empty = loaded.run("", {"text": np.array([], dtype=object)})
        assert empty["scores"].shape == (0, 2) and empty["labels"].shape == (0,)
        batcher = loaded._schedulers["serving_default"]
    finally:
        loaded.close()
    with pytest.raises(errors.ServingError, match="is closed") as info:
        batcher.submit({"text": _texts(0, 1)})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_engine_validation():
    with pytest.raises(ValueError, match="batching_engine: 'cpp' is not one of python, tensorflow"):
        Servable("tiny", 1, "/unused", batching_engine="cpp")
    with pytest.raises(ConfigError, match="--batching_engine: 'cpp' is not one of python, tensorflow"):
        check_batching_engine("cpp", True)
    check_batching_engine("python", False)
    check_batching_engine("tensorflow", True)


def test_tensorflow_engine_without_batching_is_a_config_error(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    with pytest.raises(ConfigError, match=r"^--batching_engine=tensorflow: needs --enable_batching"):
        EmbeddedServer(ServerOptions(port=0, rest_api_port=0, model_base_path=base, batching_engine="tensorflow"))


@EMBEDDED_ONLY
def test_grpc_end_to_end_with_the_tensorflow_engine(model_store, tmp_path):
    base = str(tmp_path / "m")
    shutil.rmtree(os.path.join(copy_version(model_store, 1, base), "assets.extra"))  # a warm-up would wait 30 s
    batching = tmp_path / "batching.txt"
    batching.write_text(f"max_batch_size {{ value: 4 }}\nbatch_timeout_micros {{ value: {LONG} }}\n"
                        "num_batch_threads { value: 1 }\n")
    running = start_server(["m"], rest=False, model_name="m", model_base_path=base,
                           batching_parameters_file=str(batching), batching_engine="tensorflow")
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def predict(texts):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "m"
                request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
                return stub.Predict(request, timeout=60)

            def classify(text):
                request = classification_pb2.ClassificationRequest()
                request.model_spec.name = "m"
                request.model_spec.signature_name = "classify"
                request.input.example_list.examples.add().ParseFromString(example_bytes(text))
                return stub.Classify(request, timeout=60)

            texts = [[b"short"], [b"a much longer text"], [b"tiny", b"and a longer one"]]  # 4 rows: one batch
            responses = _concurrently([lambda t=t: predict(t) for t in texts])
            labels = [tf.make_ndarray(r.outputs["labels"]).tolist() for r in responses]
            assert labels == [[b"negative"], [b"positive"], [b"negative", b"positive"]]
            answers = _concurrently([lambda t=t: classify(t) for t in ("a", "bb", "a long text here", "x" * 20)])
            assert [len(a.result.classifications) for a in answers] == [1, 1, 1, 1]
            with pytest.raises(grpc.RpcError) as info:
                predict([b"x"] * 5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "Task size 5 is larger than maximum input batch size 4" in info.value.details()
        body, _ = running.embedded.metrics.exposition()
        assert b':tensorflow:serving:batch_size_count{model_name="m"} 2.0' in body  # predict's batch, classify's
    finally:
        running.stop()


def test_llm_serve_flag(tmp_path):
    from absl.testing import flagsaver

    from llm_tf.bin import serve
    from tests.bin.test_serve import _env, llm_serve

    result = llm_serve("--backend=embedded", f"--model_base_path={tmp_path}", "--batching_engine=tensorflow")
    assert result.returncode == 1
    assert result.stderr.strip() == ("llm_serve: error: --batching_engine=tensorflow: needs --enable_batching (or "
                                     "--batching_parameters_file); without them no request is batched")
    fake = tmp_path / "tensorflow_model_server"
    fake.write_text("#!/bin/sh\necho \"$@\"\n")
    fake.chmod(0o755)
    result = llm_serve(f"--model_base_path={tmp_path}", "--enable_batching", "--batching_engine=tensorflow",
                       env=_env(TF_SERVING_BIN=str(fake)))
    assert result.returncode == 0 and "batching_engine" not in result.stdout  # not a TF Serving flag
    assert "--batching_engine is the embedded server's" in result.stderr
    with flagsaver.flagsaver(batching_engine="tensorflow", enable_batching=True):
        serve.FLAGS.mark_as_parsed()
        assert serve.options_from_flags().batching_engine == "tensorflow"
