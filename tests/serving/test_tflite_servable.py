"""The embedded server's ``--prefer_tflite_model``: versions served from model.tflite (serving/tflite_servable.py)."""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from llm_tf.errors import ConfigError
from llm_tf.serving import errors
from llm_tf.serving.servable import Servable
from llm_tf.serving.tflite_servable import (
    TFLITE_MODEL_FILE,
    TfLiteServable,
    read_signature_def_metadata,
    servable_factory,
)

TOKENS = "predict_tokens"
TEXTS = ["a gripping , funny film", "the worst movie of the year !", "dull", "a fine , moving story"]


@pytest.fixture(scope="module")
def version(exported_with_tflite):
    return exported_with_tflite.path


@pytest.fixture(scope="module")
def packed(version):
    from llm_tf.export import export_dir

    return export_dir.load_exported(version).tokenize(TEXTS)


@pytest.fixture(scope="module")
def saved_model_servable(version):
    servable = Servable("sst2", 1, version)
    yield servable
    servable.close(timeout=0)


@pytest.fixture(scope="module")
def tflite_servable(version):
    servable = TfLiteServable("sst2", 1, version, num_pools=2)
    yield servable
    servable.close(timeout=0)


def test_signatures_come_from_the_files_signature_def_metadata(tflite_servable, saved_model_servable):
    assert sorted(tflite_servable.signature_defs) == [TOKENS]
    tflite_sig, saved_sig = tflite_servable.signature_defs[TOKENS], saved_model_servable.signature_defs[TOKENS]
    assert sorted(tflite_sig.inputs) == sorted(saved_sig.inputs) == ["padding_mask", "segment_ids", "token_ids"]
    assert sorted(tflite_sig.outputs) == sorted(saved_sig.outputs) == ["label_ids", "logits", "scores"]
    assert tflite_sig.method_name == "tensorflow/serving/predict"
    # Any batch and any length (llm_export converts with dynamic_length), as the SavedModel's signature.
    assert [d.size for d in tflite_sig.inputs["token_ids"].tensor_shape.dim] == [-1, -1]
    assert [d.size for d in saved_sig.inputs["token_ids"].tensor_shape.dim] == [-1, -1]


def test_a_request_cut_to_its_longest_text_gives_the_padded_requests_answer(tflite_servable, packed):
    longest = int(np.max(np.sum(packed["padding_mask"], axis=1)))
    assert longest < packed["token_ids"].shape[1]  # the test texts are shorter than seq_length
    padded = tflite_servable.run(TOKENS, packed)
    cut = tflite_servable.run(TOKENS, {k: v[:, :longest] for k, v in packed.items()})
    np.testing.assert_allclose(cut["logits"], padded["logits"], atol=1e-4)
    np.testing.assert_array_equal(cut["label_ids"], padded["label_ids"])


def test_outputs_match_the_saved_model_within_int8_tolerance(tflite_servable, saved_model_servable, packed):
    got = tflite_servable.run(TOKENS, packed)
    want = saved_model_servable.run(TOKENS, packed)
    assert got["scores"].shape == want["scores"].shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got["scores"], want["scores"], atol=0.05)
    assert np.mean(got["label_ids"] == want["label_ids"]) >= 0.75
    single = tflite_servable.run(TOKENS, {k: v[:1] for k, v in packed.items()}, ["scores"])
    assert list(single) == ["scores"]
    np.testing.assert_allclose(single["scores"][0], got["scores"][0], atol=1e-5)


def test_float32_file_matches_the_saved_model(version, packed, saved_model_servable, tmp_path):
    from llm_tf.export import export_dir, serving_tflite

    copy = tmp_path / "2"
    shutil.copytree(version, copy)
    content, facts = serving_tflite.serving_model(export_dir.load_exported(version), "float32")
    (copy / TFLITE_MODEL_FILE).write_bytes(content)
    assert facts["label_agreement"] == 1.0 and facts["max_abs_logit_diff"] < 1e-4
    servable = TfLiteServable("sst2", 2, str(copy))
    try:
        got = servable.run(TOKENS, packed)
    finally:
        servable.close(timeout=0)
    want = saved_model_servable.run(TOKENS, packed)
    np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)
    np.testing.assert_array_equal(got["label_ids"], want["label_ids"])


def test_the_pool_serves_many_threads_with_mixed_batch_sizes(tflite_servable, packed):
    expected = {n: tflite_servable.run(TOKENS, {k: v[:n] for k, v in packed.items()})["scores"] for n in (1, 2, 3, 4)}

    def call(i):
        n = 1 + i % 4
        return n, tflite_servable.run(TOKENS, {k: v[:n] for k, v in packed.items()})["scores"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for n, scores in pool.map(call, range(96)):
            np.testing.assert_allclose(scores, expected[n], atol=1e-6)
    assert tflite_servable._pool.size == 2


def test_unknown_signature_and_bad_inputs(tflite_servable, packed):
    with pytest.raises(errors.ServingError) as e:
        tflite_servable.run("", {"text": np.array([b"x"], dtype=object)})
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.message.startswith('Serving signature key "serving_default" not found.')
    assert "model.tflite" in e.value.message and TOKENS in e.value.message
    with pytest.raises(errors.ServingError) as e:  # any batch and length, but two dimensions
        tflite_servable.run(TOKENS, {k: v[:, :, None] for k, v in packed.items()})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "signature's shape [?,?]" in e.value.message
    with pytest.raises(errors.ServingError) as e:
        tflite_servable.run(TOKENS, {k: v.astype(np.int64) for k, v in packed.items()})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_file_without_signature_metadata_gets_a_generated_serving_default(version, tmp_path):
    from llm_tf.export import export_dir, tflite_convert

    conversion = tflite_convert.convert_variant(export_dir.load_exported(version), "tokens", "float32")
    assert read_signature_def_metadata(conversion.content) == {}
    (tmp_path / TFLITE_MODEL_FILE).write_bytes(conversion.content)
    servable = TfLiteServable("m", 1, str(tmp_path))
    try:
        signature = servable.signature_defs["serving_default"]
        assert sorted(signature.inputs) == ["serving_default_padding_mask", "serving_default_segment_ids",
                                            "serving_default_token_ids"]
        assert signature.inputs["serving_default_token_ids"].name == "serving_default_token_ids:0"
        inputs = {f"serving_default_{k}": np.ones((2, 32), np.int32) for k in ("token_ids", "segment_ids",
                                                                                "padding_mask")}
        out = servable.run("", inputs)
        assert all(v.shape[0] == 2 for v in out.values())
    finally:
        servable.close(timeout=0)


def test_a_file_with_custom_ops_does_not_load(version, tmp_path):
    from llm_tf.export import export_dir, tflite_convert

    conversion = tflite_convert.convert_variant(export_dir.load_exported(version), "text", "float32")
    (tmp_path / TFLITE_MODEL_FILE).write_bytes(conversion.content)
    with pytest.raises(errors.ServingError) as e:
        TfLiteServable("m", 1, str(tmp_path))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "Cannot build Interpreter" in e.value.message


def test_the_factory_follows_prefer_tflite_model(version, tmp_path):
    assert servable_factory(False) is Servable
    build = servable_factory(True, 1)
    served = build("sst2", 1, version)
    try:
        assert isinstance(served, TfLiteServable)
    finally:
        served.close(timeout=0)
    without = tmp_path / "1"
    shutil.copytree(version, without, ignore=shutil.ignore_patterns(TFLITE_MODEL_FILE))
    served = build("sst2", 1, str(without))
    try:
        assert type(served) is Servable
    finally:
        served.close(timeout=0)


@pytest.mark.parametrize("field, value", [("num_tflite_pools", -1), ("num_tflite_interpreters_per_pool", -2)])
def test_negative_pool_options_are_one_line_errors(version, field, value):
    from llm_tf.serving.server import EmbeddedServer, ServerOptions

    with pytest.raises(ConfigError, match=f"^--{field}: must be >= 0, got {value}$"):
        EmbeddedServer(ServerOptions(model_base_path=os.path.dirname(version), **{field: value}))


@pytest.fixture(scope="module")
def server(version):
    from llm_tf.serving.server import EmbeddedServer, ServerOptions

    running = EmbeddedServer(ServerOptions(port=0, rest_api_port=-1, model_name="sst2",
                                           model_base_path=os.path.dirname(version), file_system_poll_wait_seconds=0,
                                           ready_timeout=120, prefer_tflite_model=True, num_tflite_pools=2,
                                           num_tflite_interpreters_per_pool=2))
    running.start()
    yield running
    running.stop(grace=0)


def test_grpc_predict_metadata_and_rest_on_the_tflite_version(server, tflite_servable, packed):
    channel = grpc.insecure_channel(f"localhost:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sst2"
    request.model_spec.signature_name = TOKENS
    for key, value in packed.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=30)
    want = tflite_servable.run(TOKENS, packed)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]), want["scores"], atol=1e-6)
    assert response.model_spec.signature_name == TOKENS

    # concurrent calls go through the in-servable batching (--num_tflite_interpreters_per_pool=2)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for got in pool.map(lambda _: stub.Predict(request, timeout=30), range(24)):
            np.testing.assert_allclose(tf.make_ndarray(got.outputs["scores"]), want["scores"], atol=1e-6)

    request.model_spec.signature_name = ""
    request.inputs.clear()
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a film"]))
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = "sst2"
    meta = stub.GetModelMetadata(meta_request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(signature_map)
    assert sorted(signature_map.signature_def) == [TOKENS]

    body = json.dumps({"signature_name": TOKENS,
                       "instances": [{k: v[0].tolist() for k, v in packed.items()}]}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"http://localhost:{server.rest_port}/v1/models/sst2:predict", data=body), timeout=30) as reply:
        predictions = json.loads(reply.read())["predictions"]
    np.testing.assert_allclose(predictions[0]["scores"], want["scores"][0], atol=1e-5)
    channel.close()


def test_llm_serve_passes_the_tflite_flags_to_the_real_binary(tmp_path):
    argv_file = tmp_path / "argv.txt"
    fake = tmp_path / "tensorflow_model_server"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {argv_file}\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TF_SERVING_BIN"}
    env.update(PATH="/usr/bin:/bin", TF_SERVING_BIN=str(fake))
    executable = shutil.which("llm_serve") or os.path.join(os.path.dirname(sys.executable), "llm_serve")
    result = subprocess.run([executable, f"--model_base_path={tmp_path}", "--prefer_tflite_model",
                             "--num_tflite_pools=4", "--num_tflite_interpreters_per_pool=2"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    argv = argv_file.read_text().splitlines()
    assert argv[-3:] == ["--prefer_tflite_model=true", "--num_tflite_pools=4", "--num_tflite_interpreters_per_pool=2"]
    result = subprocess.run([executable, f"--model_base_path={tmp_path}", "--num_tflite_pools=-1"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "flag --num_tflite_pools=-1: -1 is not a non-negative integer" in result.stderr
