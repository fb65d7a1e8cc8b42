"""Tests for llm_tf/export/tflite_metadata.py: entries and associated files survive and the model still runs."""

import json

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.export import tflite_metadata
from llm_tf.export.tflite_runtime import make_interpreter


@pytest.fixture(scope="module")
def small_model() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
    def double(x):
        return {"y": x * 2.0}

    return tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()]).convert()


def test_entries_and_files_round_trip_and_the_model_still_runs(small_model):
    content = tflite_metadata.with_model_files(small_model, ["neg", "pos"], b"[PAD]\n[UNK]\nfilm\n",
                                               json.dumps({"seq_length": 3}))
    entries = tflite_metadata.read_metadata(content)
    assert entries[tflite_metadata.LABELS_ENTRY] == b"neg\npos\n"
    assert entries[tflite_metadata.VOCAB_ENTRY] == b"[PAD]\n[UNK]\nfilm\n"
    assert json.loads(entries[tflite_metadata.INFO_ENTRY]) == {"seq_length": 3}
    assert "min_runtime_version" in entries  # the converter's own entries are kept
    files = tflite_metadata.read_associated_files(content)
    assert files == {"labels.txt": b"neg\npos\n", "vocab.txt": b"[PAD]\n[UNK]\nfilm\n",
                     "llm_tf_tflite.json": b'{"seq_length": 3}'}
    interpreter = make_interpreter(model_content=content)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.array([[1, 2, 3]], np.float32))
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), [[2, 4, 6]])


def test_same_named_entries_are_replaced(small_model):
    once = tflite_metadata.embed_metadata(small_model, {"a": b"1"})
    twice = tflite_metadata.embed_metadata(once, {"a": b"22", "b": b""})
    entries = tflite_metadata.read_metadata(twice)
    assert entries["a"] == b"22" and entries["b"] == b""
    assert list(entries).count("a") == 1
    assert tflite_metadata.read_associated_files(twice) == {}


def test_size_breakdown_accounts_for_every_byte(small_model):
    content = tflite_metadata.with_model_files(small_model, ["neg", "pos"], b"[PAD]\n[UNK]\nfilm\n",
                                               '{"form": "tokens"}')
    parts = tflite_metadata.size_breakdown(content)
    assert parts["total"] == len(content)
    assert parts["metadata"]["llm_tf.labels"] == len(b"neg\npos\n")
    assert parts["metadata"]["llm_tf.vocab"] == len(b"[PAD]\n[UNK]\nfilm\n")
    assert parts["constants"]["float32"] == 4  # the 2.0
    assert parts["tokenizer_models"] == 0
    # The appended zip starts where the flatbuffer ends; without files there is none.
    assert parts["associated_files"] == len(content) - tflite_metadata.archive_offset(content) > 0
    assert tflite_metadata.read_associated_files(content[tflite_metadata.archive_offset(content):])
    assert (parts["tokenizer_models"] + sum(parts["constants"].values()) + sum(parts["metadata"].values())
            + parts["associated_files"] + parts["other"]) == len(content)
    assert parts["other"] > 0
    bare = tflite_metadata.size_breakdown(small_model)
    assert bare["associated_files"] == 0 and tflite_metadata.archive_offset(small_model) == len(small_model)
