"""Tests for llm_tf/training/optimizers.py."""

import keras
import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.training.configs import OptimizerConfig
from llm_tf.training.optimizers import WarmupDecay, build_optimizer


def values(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_linear_warmup_then_linear_decay():
    schedule = WarmupDecay(1e-3, total_steps=100, warmup_steps=10)
    np.testing.assert_allclose(values(schedule, [0, 5, 10, 55, 100, 150]), [0, 5e-4, 1e-3, 5e-4, 0, 0], atol=1e-9)


def test_polynomial_and_constant():
    poly = WarmupDecay(1.0, total_steps=10, warmup_steps=0, end=0.1, power=2.0)
    np.testing.assert_allclose(values(poly, [0, 5, 10]), [1.0, 0.9 * 0.25 + 0.1, 0.1], atol=1e-6)
    const = WarmupDecay(2.0, total_steps=10, warmup_steps=2, constant=True)
    np.testing.assert_allclose(values(const, [1, 2, 9]), [1.0, 2.0, 2.0], atol=1e-6)


def test_weight_decay_skips_layer_norm_and_biases():
    optimizer = build_optimizer(OptimizerConfig(), train_steps=10)
    layer_norm = keras.layers.LayerNormalization()
    layer_norm.build((None, 4))
    dense = keras.layers.Dense(2)
    dense.build((None, 4))
    decayed = {v.path: optimizer._use_weight_decay(v) for v in layer_norm.weights + dense.weights}
    assert [path for path, used in decayed.items() if used] == [dense.kernel.path]


def test_bad_optimizer_config():
    with pytest.raises(ConfigError, match="unknown decay 'cosine'"):
        build_optimizer(OptimizerConfig(decay="cosine"), 10)
    with pytest.raises(ConfigError, match="warmup_fraction must be in"):
        build_optimizer(OptimizerConfig(warmup_fraction=1.5), 10)


def test_global_norm_clipping_applies_to_the_whole_gradient():
    config = OptimizerConfig(learning_rate=1.0, warmup_fraction=0.0, decay="constant", weight_decay=0.0, clipnorm=1.0)
    optimizer = build_optimizer(config, train_steps=10)
    a, b = keras.Variable([0.0, 0.0]), keras.Variable([0.0])
    optimizer.build([a, b])
    grads = [keras.ops.convert_to_tensor([3.0, 0.0]), keras.ops.convert_to_tensor([4.0])]  # global norm 5
    reduced = optimizer._all_reduce_sum_gradients(list(zip(grads, [a, b])))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reduced[0][0]), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reduced[1][0]), [0.8], rtol=1e-6)
    assert optimizer._clip_gradients(grads) is grads  # not clipped a second time before aggregation
