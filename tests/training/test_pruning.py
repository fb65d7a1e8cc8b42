"""Tests for llm_tf/training/pruning.py: schedule, masks, the optimizer hook, training, export, resume."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.export import export_dir, exporter
from llm_tf.training import configs, optimizers, pruning, strategies, tasks, train_lib
from tests.training.conftest import FAST


def experiment(prepared, override):
    return configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                   f"task.data.prepared_dir={prepared},{FAST},{override}")


def test_schedule_follows_polynomial_decay_and_frequency():
    schedule = pruning.PolynomialSparsity(0.8, begin_step=100, end_step=1100, initial_sparsity=0.2, power=3,
                                          frequency=100)

    def expected(step):  # TF-MOT's PolynomialDecay, by hand
        p = min(1.0, max(0.0, (step - 100) / 1000))
        return 0.8 + (0.2 - 0.8) * (1 - p) ** 3

    for step in (0, 100, 350, 600, 1000, 1100, 5000):
        assert float(schedule.sparsity(step)) == pytest.approx(expected(step), abs=1e-6), step
    assert float(schedule.sparsity(100)) == pytest.approx(0.2) and float(schedule.sparsity(1100)) == pytest.approx(0.8)
    turns = np.flatnonzero(schedule.is_update_step(tf.range(1300)).numpy())  # elementwise on a tensor of steps
    assert turns.tolist() == list(range(100, 1101, 100))
    # end_step off the frequency grid is a turn as well, so the target is always reached.
    off_grid = pruning.PolynomialSparsity(0.5, begin_step=0, end_step=250, frequency=100)
    assert np.flatnonzero(off_grid.is_update_step(tf.range(400)).numpy()).tolist() == [0, 100, 200, 250]
    assert [off_grid.last_update_step(s) for s in (50, 199, 200, 249, 260)] == [0, 100, 200, 200, 250]
    step = tf.Variable(600, dtype=tf.int64)  # graph-friendly: works on tensors in a tf.function
    assert float(tf.function(schedule.sparsity)(step)) == pytest.approx(expected(600), abs=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"target_sparsity": 1.0}, r"target_sparsity must be in \[0, 1\), got 1.0"),
    ({"target_sparsity": -0.1}, r"target_sparsity must be in \[0, 1\), got -0.1"),
    ({"begin_step": 50, "end_step": 50}, r"begin_step \(50\) must be < end_step \(50\)"),
    ({"initial_sparsity": 0.6}, r"initial_sparsity must be in \[0, target_sparsity=0.5\], got 0.6"),
    ({"frequency": 0}, "frequency must be >= 1, got 0"),
])
def test_schedule_values_are_checked(kwargs, message):
    values = {"target_sparsity": 0.5, "begin_step": 0, "end_step": 100, **kwargs}
    with pytest.raises(ConfigError, match=message):
        pruning.PolynomialSparsity(**values)


def test_mask_zeroes_exactly_the_smallest_fraction():
    rng = np.random.default_rng(0)
    magnitudes = rng.permutation(210).astype("float32") + 1.0
    values = (magnitudes * rng.choice([-1.0, 1.0], size=210)).astype("float32").reshape(10, 7, 3)
    mask = pruning.magnitude_mask(tf.constant(values), 0.3).numpy()
    assert mask.shape == values.shape and set(np.unique(mask)) == {0.0, 1.0}
    zeroed = set(np.flatnonzero(mask.reshape(-1) == 0))
    assert zeroed == set(np.argsort(np.abs(values).reshape(-1))[:63])  # round(0.3 * 210) = 63
    # Ties (all equal) still give the exact count.
    assert int((pruning.magnitude_mask(tf.ones([9, 10]), 0.45).numpy() == 0).sum()) == round(0.45 * 90)
    assert float(pruning.magnitude_mask(tf.constant(values), 0.0).numpy().min()) == 1.0


def small_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, name="pooled_dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(hidden))


@pytest.mark.parametrize("accumulation", [1, 2])
def test_pruned_weights_stay_zero_after_optimizer_steps(accumulation):
    model = small_model()
    optimizer = optimizers.build_optimizer(configs.OptimizerConfig(learning_rate=0.05, warmup_fraction=0.0,
                                                                   decay="constant",
                                                                   gradient_accumulation_steps=accumulation), 100)
    model.compile(optimizer=optimizer, loss="mse")
    optimizer.build(model.trainable_variables)
    schedule = pruning.PolynomialSparsity(0.5, begin_step=0, end_step=4, frequency=2, power=1)
    pruner = pruning.MagnitudePruning(pruning.select_weights(model, list(pruning.DEFAULT_INCLUDE)), schedule,
                                      optimizers.global_step(optimizer))
    pruner.attach(optimizer)
    assert [w.path for w in pruner.weights] == ["pooled_dense/kernel", "logits/kernel"]  # biases are not pruned
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.normal(size=(64, 4)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=2, verbose=0)
    half = {w.path: w.numpy() == 0 for w in pruner.weights}  # step 2: sparsity 0.25
    assert [int(z.sum()) for z in half.values()] == [32, 16]
    model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=2, verbose=0)
    final = {w.path: w.numpy() == 0 for w in pruner.weights}  # step 4: the target
    assert [int(z.sum()) for z in final.values()] == [64, 32]
    assert all((final[p] | ~half[p]).all() for p in half)  # pruned once, pruned for good
    model.fit(x, y, batch_size=8, epochs=3, steps_per_epoch=2, verbose=0)  # past end_step: masks fixed
    assert int(optimizers.global_step(optimizer).numpy()) == 10
    for weight in pruner.weights:
        zeros = weight.numpy() == 0
        np.testing.assert_array_equal(zeros, final[weight.path])
        np.testing.assert_array_equal(zeros, pruner.masks[weight.path].numpy() == 0)
    report = pruner.report(10, total_params=model.count_params())
    assert report["sparsity"] == 0.5 and report["zero_params"] == 96 and report["model_sparsity"] == 96 / 212
    assert report["weights"]["logits/kernel"] == {"shape": [16, 4], "size": 64, "zeros": 32, "sparsity": 0.5}


def test_config_errors_name_the_field(tmp_path, prepared_sample):
    cases = [
        ("trainer.pruning.target_sparsity=1.0", r"trainer.pruning.target_sparsity must be in \[0, 1\), got 1.0"),
        ("trainer.pruning.target_sparsity=0.5,trainer.pruning.begin_step=10,trainer.pruning.end_step=10",
         r"trainer.pruning.begin_step \(10\) must be < end_step \(10\)"),
        ("trainer.pruning.target_sparsity=0.5,trainer.pruning.end_step=20",
         r"end_step \(20\) is past trainer.train_steps \(10\)"),
        ("trainer.pruning.target_sparsity=0.5,task.lora_rank=2", "does not combine with task.lora_rank"),
    ]
    model = small_model()
    optimizer = optimizers.build_optimizer(configs.OptimizerConfig(), 10)
    for override, message in cases:
        config = experiment(prepared_sample, f"trainer.train_steps=10,trainer.steps_per_loop=10,{override}")
        with pytest.raises(ConfigError, match=message):
            pruning.build_pruning(config, model, optimizer, optimizers.global_step(optimizer))
    # Through the Trainer, with the real model's paths in the message.
    config = experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=10,"
                                         "trainer.pruning.target_sparsity=0.5,trainer.pruning.include=[dense_*/kernel]")
    with pytest.raises(ConfigError, match=r"trainer.pruning.include: no trainable weight matches \['dense_\*/kernel'\] "
                                          r"\(paths look like: token_embedding/embeddings"):
        train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())


def saved_model_weights(version_dir):
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    return {key: reader.get_tensor(key)
            for key, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating}


def test_training_with_fgm_reaches_the_target_exports_zeros_and_resumes(tmp_path, prepared_sample):
    override = ("trainer.train_steps=10,trainer.steps_per_loop=5,trainer.fgm_epsilon=1.0,trainer.max_to_keep=5,"
                "trainer.pruning.target_sparsity=0.5,trainer.pruning.end_step=10,trainer.pruning.frequency=5")
    model_dir = str(tmp_path / "run")
    result = train_lib.run_experiment(experiment(prepared_sample, override), "train_and_eval", model_dir)
    assert result["step"] == 10 and result["sparsity"] == 0.5
    report = json.loads(open(os.path.join(model_dir, pruning.PRUNING_FILE)).read())
    assert report["step"] == 10 and report["scheduled_sparsity"] == pytest.approx(0.5)
    assert len(report["weights"]) == 2 * 6 + 2  # q, k, v, output, 2 feed-forward per layer; pooler; head
    assert all(w["zeros"] == round(0.5 * w["size"]) for w in report["weights"].values())
    metrics = json.loads(open(os.path.join(model_dir, "metrics", "step_5.json")).read())
    assert 0 < metrics["sparsity"] < 0.5  # halfway through the schedule (power 3)
    assert json.loads(open(os.path.join(model_dir, "best", "best.json")).read())["step"] == 10  # at the target only

    exported = exporter.export_saved_model(model_dir, str(tmp_path / "serving"), warmup_count=0)
    weights = saved_model_weights(exported.path)
    assert not [key for key in weights if "prune_mask" in key or "pruning" in key]
    # The same float variables as the model's weights in the training checkpoint (which Keras
    # files under the optimizer's _trainable_variables): the masks stayed behind.
    at_10 = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "ckpt-10"))
    model_keys = [k for k in at_10.get_variable_to_shape_map() if k.startswith("optimizer/_trainable_variables/")]
    assert sorted(v.size for v in weights.values()) == sorted(at_10.get_tensor(k).size for k in model_keys)
    kernels = {tuple(v.shape): v for v in weights.values()}
    assert (kernels[(128, 2)] == 0).sum() == 128 and (kernels[(512, 128)] == 0).sum() == 512 * 64
    assert exported.weights["zero_params"] >= report["zero_params"]
    assert exported.weights["zero_params"] == sum(int((v == 0).sum()) for v in weights.values())
    assert exported.weights["variables_gzip_bytes"] < exported.weights["variables_bytes"]
    info = export_dir.load_export_info(exported.path)
    assert info["weights"] == exported.weights

    # A restarted run (after kill -9, say) gets its masks back from the checkpoint; with masks
    # of ones instead, the optimizer would regrow the pruned weights.
    masks = {k: at_10.get_tensor(k) for k in at_10.get_variable_to_shape_map() if k.startswith("pruning/")}
    assert len(masks) == 14 and all((m == 0).sum() == m.size // 2 for m in masks.values())
    restarted = train_lib.Trainer(experiment(prepared_sample, override), model_dir, strategies.make_strategy())
    assert all(m.numpy().min() == 1.0 for m in restarted.pruning.masks.values())
    assert restarted.restore() == 10
    for weight in restarted.pruning.weights:
        mask = restarted.pruning.masks[weight.path].numpy()
        np.testing.assert_array_equal(mask == 0, weight.numpy() == 0)
        assert (mask == 0).sum() == mask.size // 2


MIRRORED = """
import json
import keras
import numpy as np
from llm_tf.training import configs, optimizers, pruning, strategies

strategy = strategies.make_strategy("mirrored", 2)
with strategy.scope():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    model = keras.Model(inputs,
                        keras.layers.Dense(4, name="logits")(keras.layers.Dense(16, name="pooled_dense")(inputs)))
    config = configs.OptimizerConfig(learning_rate=0.05, warmup_fraction=0.0, gradient_accumulation_steps=ACCUMULATION)
    optimizer = optimizers.build_optimizer(config, 100)
    model.compile(optimizer=optimizer, loss="mse")
    optimizer.build(model.trainable_variables)
    pruner = pruning.MagnitudePruning(pruning.select_weights(model, list(pruning.DEFAULT_INCLUDE)),
                                      pruning.PolynomialSparsity(0.5, 0, 4, frequency=2),
                                      optimizers.global_step(optimizer))
    pruner.attach(optimizer)
rng = np.random.default_rng(0)
model.fit(rng.normal(size=(96, 8)).astype("float32"), rng.normal(size=(96, 4)).astype("float32"), batch_size=16,
          epochs=1, steps_per_epoch=6, verbose=0)
out = []
for weight in pruner.weights:
    replicas = [v.numpy() for v in weight.value.values]
    masks = [v.numpy() for v in pruner.masks[weight.path].values]
    out.append({"replicas": len(replicas), "zeros": [int((r == 0).sum()) for r in replicas],
                "size": int(replicas[0].size),
                "same": all(np.array_equal(r, replicas[0]) for r in replicas)
                        and all(np.array_equal(m, masks[0]) for m in masks),
                "masked": all(np.array_equal(r == 0, m == 0) for r, m in zip(replicas, masks))})
print(json.dumps({"step": int(optimizers.global_step(optimizer).numpy()), "weights": out}))
"""


@pytest.mark.parametrize("accumulation", [1, 2])
def test_mirrored_over_two_cpus_prunes_every_replica_alike(accumulation):
    # A small model is enough: the Trainer reaches the same optimizer hook under any strategy.
    run = subprocess.run([sys.executable, "-c", MIRRORED.replace("ACCUMULATION", str(accumulation))],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["step"] == 6 and len(result["weights"]) == 2
    for weight in result["weights"]:
        assert weight["replicas"] == 2 and weight["same"] and weight["masked"], weight
        assert weight["zeros"] == [weight["size"] // 2] * 2
