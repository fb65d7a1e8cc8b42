"""Tests for llm_tf/training/adversarial.py (FGM)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training import configs, strategies, tasks, train_lib
from llm_tf.training.adversarial import fgm_perturbation
from tests.training.conftest import FAST

PLAIN = ("task.model.dropout=0.0,task.head_dropout=0.0,trainer.optimizer.clipnorm=0.0,trainer.train_steps=10,"
         "trainer.steps_per_loop=10")


def experiment(prepared, override):
    return configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                   f"task.data.prepared_dir={prepared},{FAST},{override}")


def test_perturbation_has_norm_epsilon_along_the_gradient():
    gradient = tf.constant([[3.0, 0.0], [0.0, 4.0]])
    r = fgm_perturbation(gradient, 0.5).numpy()
    np.testing.assert_allclose(r, [[0.3, 0.0], [0.0, 0.4]], rtol=1e-6)
    sparse = tf.IndexedSlices(tf.constant([[3.0, 4.0]]), tf.constant([1]), tf.constant([3, 2]))
    np.testing.assert_allclose(fgm_perturbation(sparse, 1.0).numpy(), [[0, 0], [0.6, 0.8], [0, 0]], rtol=1e-6)


def test_fgm_plumbing(tmp_path, prepared_sample):
    plain = train_lib.run_experiment(experiment(prepared_sample, PLAIN), "train_and_eval", str(tmp_path / "plain"))
    # With a vanishing perturbation the step sums two equal gradients; Adam is scale-invariant,
    # so training must match plain training: the adversarial pass reuses weights and data.
    tiny = train_lib.run_experiment(experiment(prepared_sample, f"{PLAIN},trainer.fgm_epsilon=1e-9"), "train_and_eval",
                                    str(tmp_path / "tiny"))
    assert tiny["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-3)
    strong = train_lib.run_experiment(experiment(prepared_sample, f"{PLAIN},trainer.fgm_epsilon=5.0"), "train_and_eval",
                                      str(tmp_path / "strong"))
    assert abs(strong["val_loss"] - plain["val_loss"]) > 10 * abs(tiny["val_loss"] - plain["val_loss"])
    assert np.isfinite(strong["loss"])


def test_fgm_needs_a_trainable_embedding(tmp_path, prepared_sample):
    config = experiment(prepared_sample, "trainer.fgm_epsilon=1.0,task.lora_rank=2")
    with pytest.raises(ConfigError, match="no trainable variable ends with 'token_embedding/embeddings'"):
        train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    with pytest.raises(ConfigError, match="fgm_epsilon must be >= 0"):
        train_lib.Trainer(experiment(prepared_sample, "trainer.fgm_epsilon=-1.0"), str(tmp_path / "b"),
                          strategies.make_strategy())


def test_fgm_with_dropout_on(tmp_path, prepared_sample):
    # Dropout layers carry seed-generator state, which the perturbed pass must be given too.
    config = experiment(prepared_sample, "task.model.dropout=0.1,task.head_dropout=0.1,trainer.fgm_epsilon=1.0,"
                                         "trainer.train_steps=5,trainer.steps_per_loop=5")
    result = train_lib.run_experiment(config, "train", str(tmp_path))
    assert result["step"] == 5 and np.isfinite(result["loss"])


# FGM perturbs along each replica's own gradient, so with gradient accumulation over two
# replicas (global batch 8: 4 examples per replica) an update averages 4 groups of 4 examples,
# each with its own perturbation: exactly one device accumulating 4 batches of 4.
MIRRORED_ACCUMULATION = """
import json
import keras
import numpy as np
from llm_tf.training import configs, optimizers, strategies
from llm_tf.training.adversarial import FGMModel

mirrored = strategies.make_strategy("mirrored", 2)
rng = np.random.default_rng(0)
x, y = rng.integers(1, 50, size=(64, 6)).astype("int32"), rng.integers(0, 3, size=(64,))

def fit(strategy, batch, steps, accumulation):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((6,), dtype="int32")
        embedded = keras.layers.Embedding(50, 8, name="token_embedding")(inputs)
        outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(embedded))
        model = FGMModel(inputs, outputs, 0.5, name="fgm")
        config = configs.OptimizerConfig(learning_rate=0.01, warmup_fraction=0.0, decay="constant",
                                         gradient_accumulation_steps=accumulation)
        optimizer = optimizers.build_optimizer(config, steps)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return [w.numpy() for w in model.weights], int(keras.ops.convert_to_numpy(optimizer.iterations))

accumulated, updates = fit(mirrored, 8, 8, 2)
reference, reference_updates = fit(strategies.make_strategy("one_device"), 4, 16, 4)
print(json.dumps({"diff": max(float(np.abs(a - b).max()) for a, b in zip(accumulated, reference)),
                  "updates": [updates, reference_updates]}))
"""


def test_fgm_with_gradient_accumulation_over_two_replicas():
    run = subprocess.run([sys.executable, "-c", MIRRORED_ACCUMULATION], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["updates"] == [4, 4]
    assert result["diff"] < 1e-6, result
