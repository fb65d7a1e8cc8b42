"""Tests for llm_tf.serving.servable."""

import os
import threading

import grpc
import numpy as np
import pytest

from llm_tf.serving import errors
from llm_tf.serving.config import BatchingSpec
from llm_tf.serving.servable import CLASSIFY_METHOD, PREDICT_METHOD, Servable, read_signature_defs
from tests.serving.conftest import copy_version, example_bytes, write_broken_version

TEXTS = np.array([b"short", b"a considerably longer text"], dtype=object)


@pytest.fixture(scope="module")
def servable(model_store):
    loaded = Servable("tiny", 1, os.path.join(model_store, "1"))
    yield loaded
    loaded.close()


def _code(info):
    return info.value.code


def test_signature_defs_and_method_names(servable):
    assert {"serving_default", "predict_tokens", "classify", "regress"} <= set(servable.signature_defs)
    assert servable.method_name("serving_default") == PREDICT_METHOD
    assert servable.method_name("classify") == CLASSIFY_METHOD
    assert servable.method_name("nope") is None
    assert set(servable.signature_defs["serving_default"].outputs) == {"scores", "label_ids", "labels"}


def test_run_default_signature(servable):
    out = servable.run("", {"text": TEXTS})
    assert set(out) == {"scores", "label_ids", "labels"}
    assert out["scores"].shape == (2, 2) and out["scores"].dtype == np.float32
    assert out["label_ids"].tolist() == [0, 1]
    assert out["labels"].tolist() == [b"negative", b"positive"]
    np.testing.assert_allclose(out["scores"].sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_run_token_signature_and_output_filter(servable):
    ids = np.ones((2, 4), np.int32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.int32)
    out = servable.run("predict_tokens", {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": mask},
                       output_filter=["label_ids"])
    assert list(out) == ["label_ids"] and out["label_ids"].shape == (2,)


@pytest.mark.parametrize("signature, inputs, code, match", [
    ("nope", {"text": TEXTS}, grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    ("", {"txt": TEXTS}, grpc.StatusCode.INVALID_ARGUMENT,
     r"Sent extra: \{txt\}. Missing but required: \{text\}."),
    ("", {"text": TEXTS, "more": TEXTS}, grpc.StatusCode.INVALID_ARGUMENT,
     r"input size does not match signature: 2!=1"),
    ("", {"text": np.array([1.0], np.float32)}, grpc.StatusCode.INVALID_ARGUMENT,
     "Expects arg 'text' to be string but float is provided"),
    ("", {"text": np.array([[b"a"]], dtype=object)}, grpc.StatusCode.INVALID_ARGUMENT,
     r"input 'text' has shape \[1, 1\], incompatible with the signature's shape \[\?\]"),
])
def test_run_validation(servable, signature, inputs, code, match):
    with pytest.raises(errors.ServingError, match=match) as info:
        servable.run(signature, inputs)
    assert _code(info) == code


def test_output_filter_errors(servable):
    with pytest.raises(errors.ServingError, match=r"output tensor alias not found in signature: bad Outputs "
                                                 r"expected to be in the set \{label_ids,labels,scores\}.") as info:
        servable.run("", {"text": TEXTS}, output_filter=["bad"])
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(errors.ServingError, match="duplicate output tensor alias: scores"):
        servable.run("", {"text": TEXTS}, output_filter=["scores", "scores"])


def test_model_errors_keep_their_code(servable):
    with pytest.raises(errors.ServingError) as info:  # not a tf.Example
        servable.run("classify", {"inputs": np.array([b"garbage"], dtype=object)})
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT
    out = servable.run("classify", {"inputs": np.array([example_bytes("hello")], dtype=object)})
    assert out["classes"].tolist() == [[b"negative", b"positive"]]


def test_warmup_records(servable):
    records = servable.warmup_records()
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "classify_log"]


def test_corrupt_warmup_file_is_data_loss(model_store, tmp_path):
    path = copy_version(model_store, 1, str(tmp_path))
    with open(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"), "wb") as f:
        f.write(b"not a tfrecord file at all")
    loaded = Servable("tiny", 1, path)
    with pytest.raises(errors.ServingError, match="TFRecord format") as info:
        loaded.warmup_records()
    assert _code(info) == grpc.StatusCode.DATA_LOSS
    loaded.close()


def test_garbage_saved_model_fails_to_load(tmp_path):
    path = write_broken_version(str(tmp_path), 3)
    with pytest.raises(errors.ServingError, match="saved_model.pb: not a SavedModel proto") as info:
        Servable("tiny", 3, path)
    assert _code(info) == grpc.StatusCode.DATA_LOSS
    with pytest.raises(errors.ServingError, match="cannot read") as info:
        read_signature_defs(str(tmp_path))
    assert _code(info) == grpc.StatusCode.NOT_FOUND


def test_close_waits_for_in_flight_requests(model_store):
    loaded = Servable("tiny", 1, os.path.join(model_store, "1"))
    assert loaded.acquire() and loaded.in_flight == 1
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (loaded.close(timeout=10), closed.set()))
    closer.start()
    assert not closed.wait(0.3)  # blocked by the in-flight request, which still runs
    assert loaded.run("", {"text": TEXTS})["label_ids"].tolist() == [0, 1]
    loaded.release()
    assert closed.wait(5)
    closer.join()
    assert not loaded.acquire()


def test_batching_merges_concurrent_requests(model_store):
    sizes = []
    spec = BatchingSpec(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1)
    loaded = Servable("tiny", 1, os.path.join(model_store, "1"), batching=spec, on_batch=sizes.append)
    results = [None] * 4

    def call(i):
        results[i] = loaded.run("", {"text": np.array([b"x" * (5 * i)], dtype=object)}, ["label_ids"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded.close()
    assert [r["label_ids"].tolist() for r in results] == [[0], [0], [0], [1]]
    assert sum(sizes) == 4 and max(sizes) > 1  # at least two requests shared a batch
