"""llm_export --tflite_model: model.tflite in the version directory (llm_tf/export/serving_tflite.py)."""

import os

import pytest

from llm_tf import io_utils
from llm_tf.errors import ConfigError, LlmTfError
from llm_tf.export import export_dir, exporter, serving_tflite, warmup
from llm_tf.serving.tflite_servable import read_signature_def_metadata


def test_the_version_holds_a_builtin_ops_model_tflite_with_the_token_signature(exported_with_tflite):
    result = exported_with_tflite
    path = os.path.join(result.path, export_dir.MODEL_TFLITE_FILE)
    content = open(path, "rb").read()
    assert result.tflite_model["file"] == export_dir.MODEL_TFLITE_FILE
    assert result.tflite_model["variant"] == "dynamic_int8" and result.tflite_model["bytes"] == len(content)
    assert result.tflite_model["label_agreement"] >= 0.75
    assert export_dir.load_export_info(result.path)["tflite_model"] == "dynamic_int8"
    defs = read_signature_def_metadata(content)
    assert sorted(defs) == ["predict_tokens"]
    # tf.lite's plain interpreter (builtin ops, as tensorflow_model_server) loads it and knows every named tensor
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=content)
    names = {d["name"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    signature = defs["predict_tokens"]
    assert {info.name for info in list(signature.inputs.values()) + list(signature.outputs.values())} <= names
    # warm-up requests use predict_tokens, which the SavedModel and model.tflite both serve
    logs = warmup.read_warmup(os.path.join(result.path, export_dir.WARMUP_FILE))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["predict_tokens"] * 2
    assert [log.predict_log.request.inputs["token_ids"].tensor_shape.dim[0].size for log in logs] == [1, 3]


def test_unknown_variant_is_refused_before_anything_is_written(trained_classifier, tmp_path):
    with pytest.raises(ConfigError, match=r"^--tflite_model: unknown value 'full_int8' \(expected one of: none, "):
        exporter.export_saved_model(trained_classifier, str(tmp_path / "m"), tflite_model="full_int8")
    assert not (tmp_path / "m").exists() or not os.listdir(tmp_path / "m")


def test_a_failed_conversion_publishes_no_version(trained_classifier, tmp_path, monkeypatch):
    def fail(exported, variant):
        raise LlmTfError("converter failed: op FOO")

    monkeypatch.setattr(serving_tflite, "serving_model", fail)
    base = tmp_path / "m"
    with pytest.raises(LlmTfError, match="converter failed"):
        exporter.export_saved_model(trained_classifier, str(base), warmup_count=0, tflite_model="float32")
    assert export_dir.existing_versions(str(base)) == [] and os.listdir(base) == []


def test_bucket_copies_put_model_tflite_and_saved_model_last(tmp_path):
    source = tmp_path / "src"
    for name in ("saved_model.pb", export_dir.MODEL_TFLITE_FILE, "variables/variables.index", "assets.extra/x"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"x")
    written = io_utils.copy_tree(str(source), str(tmp_path / "dst"),
                                 last=(export_dir.SAVED_MODEL_FILE, export_dir.MODEL_TFLITE_FILE))
    assert [os.path.basename(w) for w in written[-2:]] == [export_dir.MODEL_TFLITE_FILE, "saved_model.pb"]


def test_signature_defs_round_trip_and_nul_bytes_are_refused(loaded_export):
    from tensorflow.core.protobuf import meta_graph_pb2

    from llm_tf.export import tflite_convert

    content = tflite_convert.convert_variant(loaded_export, "tokens", "float32").content
    signature = serving_tflite.tokens_signature_def(content)
    assert [d.size for d in signature.outputs["scores"].tensor_shape.dim] == [-1, len(loaded_export.labels)]
    with_defs = serving_tflite.with_signature_defs(content, {"predict_tokens": signature})
    assert read_signature_def_metadata(with_defs)["predict_tokens"] == signature
    empty_shape = meta_graph_pb2.SignatureDef()
    empty_shape.inputs["x"].tensor_shape.SetInParent()  # an empty sub-message: a 0 length byte
    with pytest.raises(LlmTfError, match="NUL byte"):
        serving_tflite.with_signature_defs(content, {"s": empty_shape})
