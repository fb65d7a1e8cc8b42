"""Tests for llm_tf/compat.py: every entry against the installed Keras, TensorFlow, keras-hub, LiteRT, tensorflow-text.

A test per entry (or per group of entries on one object), named after it: an upgrade that
removes or changes a private API llm_tf relies on fails here, by name.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from llm_tf import compat
from llm_tf.training import multi_worker, optimizers
from llm_tf.training.configs import OptimizerConfig


def _functional():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


# -- private overrides ---------------------------------------------------------------------------


def test_optimizer_private_overrides_match_keras():
    compat.check_private_overrides(optimizers.AdamW, keras.optimizers.AdamW, compat.OPTIMIZER_PRIVATE_OVERRIDES)


def test_model_private_overrides_match_keras():
    compat.check_private_overrides(multi_worker.MultiWorkerFit, keras.Model, compat.MODEL_PRIVATE_OVERRIDES)


def test_check_private_overrides_names_each_problem():
    class Base:
        def _step(self, a, b):
            pass

        def _helper(self):
            pass

    class Ours(Base):
        def _step(self, a):  # parameters differ
            pass

        def _gone(self):  # listed, not on the base any more
            pass

        def _helper(self):  # not listed, yet overrides the base's
            pass

    with pytest.raises(compat.CompatError) as error:
        compat.check_private_overrides(Ours, Base, ("_step", "_gone", "_missing"))
    message = str(error.value)
    assert "_step(self, a, b) does not match the override Ours._step(self, a)" in message
    assert "has no method _gone any more" in message
    assert "Ours does not define _missing" in message
    assert "Ours._helper overrides Base._helper without being listed" in message
    assert compat.private_overrides(Base, ())(type("Fine", (Base,), {"_new": None})).__name__ == "Fine"


def test_keras_fit_calls_maybe_symbolic_build_with_an_epoch_iterator():
    """``MultiWorkerFit._maybe_symbolic_build`` reads ``(begin, end, batches)`` items, then ``symbolic_build``."""
    calls = []

    class Spy(multi_worker.MultiWorkerFit):
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            calls.append(iterator is not None)
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():  # a strategy: Keras builds through the override
        model = _functional()
    model.__class__ = type("SpyModel", (Spy, type(model)), {})
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"), batch_size=2, verbose=0)
    assert calls and calls[0]
    assert model.optimizer.built and set(history.history) == {"loss", "mae"}


# -- Keras: losses and the trainer ---------------------------------------------------------------


def test_loss_scaling_for_distribution():
    loss = tf.constant(3.0)
    assert float(compat.scale_loss_for_distribution(loss)) == 3.0  # one replica
    assert float(compat.unscale_loss_for_distribution(loss)) == 3.0
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        assert float(compat.scale_loss_for_distribution(loss)) == 3.0


def test_loss_tracker_is_the_loss_metric_after_compile():
    model = _functional()
    assert compat.loss_tracker(model) is None
    model.compile(optimizer="sgd", loss="mse")
    tracker = compat.loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean) and tracker.name == "loss" and tracker in model.metrics


def test_symbolic_build_builds_the_optimizer_and_metrics():
    model = _functional()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert not model.optimizer.built
    compat.symbolic_build(model, (np.zeros((2, 3), "float32"), np.zeros((2, 2), "float32")))
    assert model.optimizer.built and set(model.get_metrics_result()) == {"loss", "mae"}  # compiled metrics built


def test_sublayers_reach_inside_keras_hub_transformer_layers():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=8)
    names = {layer.name for layer in compat.sublayers(backbone)}
    assert {"token_embedding", "query", "value", "feedforward_intermediate_dense"} <= names
    assert backbone.name not in names


# -- Keras: optimizer state ----------------------------------------------------------------------


def test_optimizer_state_accessors():
    config = OptimizerConfig(gradient_accumulation_steps=2, warmup_fraction=0.0)
    optimizer = optimizers.build_optimizer(config, train_steps=10)
    kernel, bias = keras.Variable(np.ones((3, 2), "float32"), name="kernel"), keras.Variable([0.0, 0.0], name="bias")
    optimizer.build([kernel, bias])
    assert compat.variable_index(optimizer, bias) == 1
    momentum, velocity = compat.adam_moments(optimizer, compat.variable_index(optimizer, kernel))
    assert momentum.shape == velocity.shape == kernel.shape and momentum is not velocity
    assert [a.shape for a in compat.accumulated_gradients(optimizer)] == [kernel.shape, bias.shape]
    assert compat.optimizer_strategy(optimizer) is tf.distribute.get_strategy()
    assert compat.uses_weight_decay(optimizer, kernel) and not compat.uses_weight_decay(optimizer, bias)
    optimizer.apply([tf.ones((3, 2)), tf.ones((2,))], [kernel, bias])  # one batch of two accumulated
    assert int(compat.batch_counter(optimizer)) == 1 and int(optimizer.iterations) == 0


# -- keras-hub -----------------------------------------------------------------------------------


def test_transformer_encoder_parts_hold_all_its_weights():
    import keras_hub

    layer = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)
    layer.build((None, 4, 8))
    parts = compat.transformer_encoder_parts(layer)
    assert list(parts) == list(compat.TRANSFORMER_ENCODER_PARTS)
    assert all(part.name == name for name, part in parts.items())
    assert parts["feedforward_intermediate_dense"].units == 16
    assert sorted(w.path for part in parts.values() for w in part.weights) == sorted(w.path for w in layer.weights)


# -- TensorFlow: distribution ----------------------------------------------------------------------


def test_in_multi_worker_mode(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert not compat.in_multi_worker_mode(tf.distribute.get_strategy())
    assert not compat.in_multi_worker_mode(tf.distribute.MultiWorkerMirroredStrategy())  # one worker


def test_maybe_merge_call_runs_fn_in_the_cross_replica_context():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    seen = []

    def fn(distribution, value):
        seen.append((distribution, tf.distribute.in_cross_replica_context()))
        return value + 1

    @tf.function
    def step():
        return strategy.run(lambda: compat.maybe_merge_call(fn, strategy, tf.constant(1)))

    assert int(step()) == 2
    assert seen == [(strategy, True)]


# -- TensorFlow: SavedModel and TFLite conversion ------------------------------------------------


class _Tiny(tf.Module):
    def __init__(self):
        self.w = tf.Variable(np.random.default_rng(0).standard_normal((4, 3)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.nn.softmax(tf.matmul(x, self.w))}


def test_onednn_enabled_follows_tensorflows_switch():
    # TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads: one process per value.
    code = "from llm_tf import compat; import tensorflow; print(compat.onednn_enabled())"
    for value, expected in (("1", "True"), ("0", "False")):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert result.stdout.strip() == expected, result.stderr[-2000:]


def test_write_fingerprint(tmp_path):
    path = str(tmp_path / "model")
    tf.saved_model.save(_Tiny(), path)
    before = tf.saved_model.experimental.read_fingerprint(path).singleprint()
    os.remove(os.path.join(path, "fingerprint.pb"))
    compat.write_fingerprint(path)
    assert tf.saved_model.experimental.read_fingerprint(path).singleprint() == before


def _converter():
    module = _Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(1)
    converter.representative_dataset = lambda: ([rng.standard_normal((1, 4)).astype("float32")] for _ in range(8))
    return converter


def _op_types(content: bytes) -> set:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # no DELEGATE nodes
    wrapper = compat.interpreter_wrapper(Interpreter(model_content=content, experimental_op_resolver_type=resolver))
    return {wrapper.NodeName(i) for i in range(wrapper.NumNodes())}


def test_calibration_custom_ops_calibrate_only_and_mlir_quantize():
    converter = _converter()
    compat.set_calibration_custom_ops(converter, [])
    assert converter.target_spec._experimental_custom_op_registerers == []
    compat.set_calibrate_only(converter)
    calibrated = converter.convert()
    assert "QUANTIZE" not in _op_types(calibrated)  # calibrated, still float
    quantized = compat.mlir_quantize(calibrated, [])
    assert "QUANTIZE" in _op_types(quantized)
    kept_float = compat.mlir_quantize(calibrated, ["SOFTMAX"])
    assert _op_types(kept_float) >= {"SOFTMAX", "DEQUANTIZE"}


def test_converter_setters_fail_loudly_when_the_attribute_is_gone():
    class Spec:
        pass

    class Converter:
        target_spec = Spec()

    with pytest.raises(compat.CompatError, match="_experimental_custom_op_registerers"):
        compat.set_calibration_custom_ops(Converter(), [])
    with pytest.raises(compat.CompatError, match="_experimental_calibrate_only"):
        compat.set_calibrate_only(Converter())


# -- LiteRT / tf.lite interpreters ----------------------------------------------------------------


def test_interpreter_and_signature_runner_internals():
    from llm_tf.export.tflite_runtime import make_interpreter

    interpreter = make_interpreter(model_content=_converter().convert())
    wrapper = compat.interpreter_wrapper(interpreter)
    assert all(hasattr(wrapper, a) for a in ("NumNodes", "NodeName", "NodeInputs", "NodeOutputs"))
    runner = interpreter.get_signature_runner()
    runner_wrapper, subgraph = compat.signature_runner_internals(runner)
    assert subgraph == 0
    assert all(hasattr(runner_wrapper, a) for a in ("ResizeInputTensor", "AllocateTensors", "SetTensor", "Invoke",
                                                    "GetTensor"))
    assert compat.interpreter_wrapper(object()) is None and compat.signature_runner_internals(object()) == (None, None)


# -- tensorflow-text -------------------------------------------------------------------------------


def test_basic_tokenizer():
    words = compat.basic_tokenizer(lower_case=True).tokenize(["Hello, Wörld!"])
    assert words.to_list() == [[b"hello", b",", b"world", b"!"]]


def test_learn_wordpiece_vocab():
    vocab = compat.learn_wordpiece_vocab([("hello", 50), ("help", 40), ("world", 30)], 40, ["[PAD]", "[UNK]"],
                                         upper_thresh=10_000_000, lower_thresh=1, num_iterations=4)
    assert vocab[:2] == ["[PAD]", "[UNK]"] and "hello" in vocab and "##d" in vocab


def test_flexbuffer_string_map_holds_raw_bytes():
    from flatbuffers import flexbuffers

    data = compat.flexbuffer_string_map({"b": b"\xff\x01", "a": b"text"})
    root = flexbuffers.GetRoot(data).AsMap
    assert [k.AsKey for k in root.Keys] == ["a", "b"]
    assert all(v.IsString for v in root.Values)
    assert [v.AsStringBytes for v in root.Values] == [b"text", b"\xff\x01"]
