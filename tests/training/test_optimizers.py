"""Tests for llm_tf/training/optimizers.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.training.configs import OptimizerConfig
from llm_tf.training.optimizers import AdamW, WarmupDecay, build_optimizer, clip_by_global_norm, global_step


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


def run_steps(optimizer, grads_per_step):
    """Applies each step's gradients to fresh variables; returns the variables' and the optimizer's values."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=(5, 3)).astype("float32"), name="kernel"),
                 keras.Variable(rng.normal(size=(3,)).astype("float32"), name="bias")]
    optimizer.build(variables)
    for grads in grads_per_step:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables + optimizer.variables]


@pytest.mark.parametrize("accumulation", [None, 2])
def test_fused_adam_step_equals_keras_adamw(accumulation):
    # Ours runs one ResourceApplyAdam per variable with the step's scalars computed once; Keras's
    # AdamW (same hyper-parameters, schedule, weight-decay exclusion, accumulation) is the reference.
    rng = np.random.default_rng(1)
    steps = [[rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")] for _ in range(6)]
    results = []
    for cls in (AdamW, keras.optimizers.AdamW):
        optimizer = cls(learning_rate=WarmupDecay(0.05, total_steps=6, warmup_steps=2), weight_decay=0.1,
                        beta_1=0.8, beta_2=0.95, epsilon=1e-6, gradient_accumulation_steps=accumulation)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        results.append(run_steps(optimizer, steps))
    ours, reference = results
    assert len(ours) == len(reference)
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert not np.allclose(ours[0], run_steps(AdamW(learning_rate=0.05), [])[0])  # the weights did move


def test_amsgrad_keeps_keras_update():
    rng = np.random.default_rng(2)
    steps = [[rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")] for _ in range(3)]
    ours = run_steps(AdamW(learning_rate=0.05, amsgrad=True), steps)
    reference = run_steps(keras.optimizers.AdamW(learning_rate=0.05, amsgrad=True), steps)
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_sparse_gradients_count_repeated_rows_as_one_gradient():
    import tensorflow as tf

    # Token 1 looked up twice: its gradient row is [6, 8] (norm 10), as the dense gradient says.
    rows = tf.IndexedSlices(tf.constant([[3.0, 4.0], [3.0, 4.0]]), tf.constant([1, 1]), tf.constant([3, 2]))
    (clipped,) = clip_by_global_norm([rows], 5.0)
    np.testing.assert_allclose(tf.convert_to_tensor(clipped).numpy(), [[0, 0], [3, 4], [0, 0]], rtol=1e-6)
    # Adam's step from the sparse gradient equals the step from its dense sum.
    config = OptimizerConfig(learning_rate=0.1, warmup_fraction=0.0, decay="constant", weight_decay=0.0, clipnorm=0.0)
    steps = []
    for gradient in (rows, tf.convert_to_tensor(rows)):
        optimizer = build_optimizer(config, train_steps=10)
        table = keras.Variable(np.ones((3, 2), "float32"))
        optimizer.build([table])
        for _ in range(2):
            optimizer.apply([gradient], [table])
        steps.append([keras.ops.convert_to_numpy(v) for v in [table] + optimizer.variables])
    for sparse, dense in zip(*steps):
        np.testing.assert_allclose(sparse, dense, rtol=1e-6)


def _fit(batch, steps, accumulation, clipnorm, keras_accumulation=False):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    config = OptimizerConfig(learning_rate=0.01, warmup_fraction=0.25, gradient_accumulation_steps=accumulation,
                             clipnorm=clipnorm)
    optimizer = build_optimizer(config, steps)
    if keras_accumulation:
        # Keras's own one-device accumulation, which ours must reproduce exactly.
        optimizer.__class__ = type("KerasAccumulation", (AdamW,), {
            "_backend_apply_gradients": keras.optimizers.AdamW._backend_apply_gradients})
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, size=(64,))
    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return model, optimizer


@pytest.mark.parametrize("clipnorm", [0.05, 0.0])
def test_accumulation_on_one_device_is_keras_accumulation(clipnorm):
    ours, optimizer = _fit(8, 8, 2, clipnorm)
    reference, keras_optimizer = _fit(8, 8, 2, clipnorm, keras_accumulation=True)
    for a, b in zip(ours.weights + optimizer.variables, reference.weights + keras_optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert int(global_step(optimizer).numpy()) == 8 and int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4


# k=2 micro-batches of a global batch 8 on two logical CPUs (4 per replica) against one device
# with batch 16 and no accumulation: the same examples per update, so the same weights and Adam
# state after every update (clipping active, weight decay on, constant learning rate).
MIRRORED_ACCUMULATION = """
import json
import keras
import numpy as np
from llm_tf.training import configs, optimizers, strategies

mirrored = strategies.make_strategy("mirrored", 2)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(96, 8)).astype("float32"), rng.integers(0, 3, size=(96,))

def fit(strategy, batch, steps, accumulation):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
        config = configs.OptimizerConfig(learning_rate=0.01, warmup_fraction=0.0, decay="constant", clipnorm=0.05,
                                         weight_decay=0.01, gradient_accumulation_steps=accumulation)
        optimizer = optimizers.build_optimizer(config, steps)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    replicas = [[v.numpy() for v in w.value.values] if hasattr(w.value, "values") else [w.numpy()]
                for w in model.weights]
    return {"weights": [r[0] for r in replicas],
            "replicas_equal": all(all(np.array_equal(v, r[0]) for v in r) for r in replicas),
            "slots": [np.asarray(v.numpy()) for v in optimizer.variables if "gradient_accumulator" not in v.path
                      and v is not optimizer._iterations],
            "updates": int(keras.ops.convert_to_numpy(optimizer.iterations)),
            "batches": int(optimizers.global_step(optimizer).numpy()), "loss": history.history["loss"][-1]}

accumulated = fit(mirrored, 8, 12, 2)
large = fit(strategies.make_strategy("one_device"), 16, 6, 1)
diff = lambda a, b: max(float(np.abs(p - q).max()) for p, q in zip(a, b))
print(json.dumps({"weights": diff(accumulated["weights"], large["weights"]),
                  "slots": diff(accumulated["slots"], large["slots"]),
                  "replicas_equal": accumulated["replicas_equal"],
                  "updates": [accumulated["updates"], large["updates"]],
                  "batches": accumulated["batches"], "slot_count": [len(accumulated["slots"]), len(large["slots"])]}))
"""


def test_mirrored_accumulation_equals_a_larger_batch_on_one_device():
    run = subprocess.run([sys.executable, "-c", MIRRORED_ACCUMULATION], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["updates"] == [6, 6] and result["batches"] == 12 and result["replicas_equal"]
    assert result["slot_count"][0] == result["slot_count"][1] > 0
    assert result["weights"] < 1e-6 and result["slots"] < 1e-6, result
