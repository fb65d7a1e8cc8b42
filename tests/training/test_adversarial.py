"""Tests for llm_tf/training/adversarial.py (FGM)."""

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training import configs, strategies, tasks, train_lib
from llm_tf.training.adversarial import fgm_perturbation
from tests.training.conftest import FAST

PLAIN = "task.model.dropout=0.0,task.head_dropout=0.0,trainer.optimizer.clipnorm=0.0,trainer.train_steps=10,trainer.steps_per_loop=10"


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
        train_lib.Trainer(experiment(prepared_sample, "trainer.fgm_epsilon=-1.0"), str(tmp_path / "b"), strategies.make_strategy())


def test_fgm_with_dropout_on(tmp_path, prepared_sample):
    # Dropout layers carry seed-generator state, which the perturbed pass must be given too.
    config = experiment(prepared_sample, "task.model.dropout=0.1,task.head_dropout=0.1,trainer.fgm_epsilon=1.0,"
                                         "trainer.train_steps=5,trainer.steps_per_loop=5")
    result = train_lib.run_experiment(config, "train", str(tmp_path))
    assert result["step"] == 5 and np.isfinite(result["loss"])
