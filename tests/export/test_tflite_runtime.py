"""Tests for llm_tf/export/tflite_runtime.py: the interpreter settings and where the kernels run."""

import numpy as np
import tensorflow as tf

from llm_tf.export import tflite_runtime


def _dense_model(quantize: bool) -> bytes:
    weights = tf.constant(np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 64], tf.float32, name="x")])
    def dense(x):
        return {"y": tf.nn.relu(tf.einsum("bsk,kn->bsn", x, weights))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([dense.get_concrete_function()])
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def test_xnnpack_runs_float_and_dynamic_int8_fully_connected():
    for quantize in (False, True):
        interpreter = tflite_runtime.make_interpreter(model_content=_dense_model(quantize), num_threads=1)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ones((1, 8, 64), np.float32))
        interpreter.invoke()
        assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape == (1, 8, 32)
        placement = tflite_runtime.kernel_placement(interpreter)
        assert placement["delegate_partitions"] >= 1 and placement["delegated_nodes"] >= 1
        # The int8-weight FULLY_CONNECTED is XNNPACK's (dynamically quantized), not TFLite's hybrid kernel.
        assert "FULLY_CONNECTED" not in placement["tflite_kernels"], placement
        assert placement["nodes"] == placement["delegated_nodes"] + sum(placement["tflite_kernels"].values())


def test_settings_are_described():
    assert tflite_runtime.INTERPRETER_SETTINGS["xnnpack"] is True
    assert tflite_runtime.runtime_version().startswith(("ai_edge_litert ", "tf.lite "))


def test_classifier_variants_run_their_matrix_products_in_xnnpack(converted):
    for name in ("tokens_float32", "tokens_dynamic_int8", "text_dynamic_int8"):
        path, conversion = converted[name]
        interpreter = tflite_runtime.make_interpreter(model_path=path, num_threads=1)
        if conversion.form == "text":
            interpreter.get_signature_runner("classify")(text=np.array([b"a fine film"], dtype=object))
        else:
            ids = np.zeros((1, 32), np.int32)
            interpreter.get_signature_runner("serving_default")(token_ids=ids, segment_ids=ids, padding_mask=ids + 1)
        placement = tflite_runtime.kernel_placement(interpreter)
        for op in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"):
            assert op not in placement["tflite_kernels"], (name, placement)
        if conversion.form == "text":
            assert "FastWordpieceTokenizeWithOffsets" in placement["tflite_kernels"]
