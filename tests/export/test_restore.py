"""Tests for llm_tf/export/restore.py."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml

from llm_tf.errors import ConfigError, DataError
from llm_tf.export import restore
from tests.conftest import train_tiny


def _predict(trained, texts):
    inputs = trained.task.data.tokenizer(tf.constant(texts), seq_length=trained.config.task.data.seq_length)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    return trained.model(inputs, training=False).numpy()


def test_restores_best_and_latest(trained_classifier):
    best = restore.restore_trained_model(trained_classifier, "best")
    latest = restore.restore_trained_model(trained_classifier, "latest")
    assert "/best/" in best.checkpoint and "/checkpoints/" in latest.checkpoint
    assert latest.step == 30 and best.step in (15, 30)
    assert best.config.experiment == "sentence_classification"
    assert best.task.data.labels == ["0", "1"]
    explicit = restore.restore_trained_model(trained_classifier, latest.checkpoint)
    np.testing.assert_allclose(_predict(explicit, ["a fine film"]), _predict(latest, ["a fine film"]), atol=1e-6)


def test_restored_weights_are_the_trained_ones_not_fresh(trained_classifier):
    trained = restore.restore_trained_model(trained_classifier, "latest")
    fresh = trained.task.build_model()
    assert not np.allclose(_predict(trained, ["a fine film", "dull"]),
                           fresh({k: tf.cast(v, tf.int32) for k, v in trained.task.data.tokenizer(
                               tf.constant(["a fine film", "dull"]), seq_length=32).items()}, training=False).numpy())


def test_missing_directory_params_and_checkpoint(tmp_path, trained_classifier):
    with pytest.raises(DataError, match="not a training directory"):
        restore.restore_trained_model(str(tmp_path))
    copy = tmp_path / "copy"
    os.makedirs(copy)
    shutil.copy(os.path.join(trained_classifier, "params.yaml"), copy)
    with pytest.raises(DataError, match="no checkpoint to export"):
        restore.restore_trained_model(str(copy))
    with pytest.raises(DataError, match="no such checkpoint"):
        restore.find_checkpoint(trained_classifier, str(tmp_path / "ckpt-7"))


def test_checkpoint_that_does_not_fit_the_config_is_a_clear_error(tmp_path, trained_classifier):
    copy = tmp_path / "run"
    shutil.copytree(trained_classifier, copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["task"]["model"]["size"] = "mini"
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="checkpoint does not match the model"):
        restore.restore_trained_model(str(copy))


def test_moved_prepared_data_can_be_given(tmp_path, trained_classifier, prepared_sample):
    copy = tmp_path / "run"
    shutil.copytree(trained_classifier, copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["task"]["data"]["prepared_dir"] = str(tmp_path / "gone")
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(DataError, match="gone"):
        restore.restore_trained_model(str(copy))
    assert restore.restore_trained_model(str(copy), prepared_dir=prepared_sample).task.data.labels == ["0", "1"]


def test_lora_is_merged_and_predictions_are_kept(tmp_path, prepared_sample):
    run = train_tiny(prepared_sample, str(tmp_path / "lora"),
                     override="task.lora_rank=4,task.lora_targets=[query,value,token_embedding],task.lora_embedding_rank=2,"
                              "trainer.train_steps=4,trainer.steps_per_loop=2")
    trained = restore.restore_trained_model(run, "latest")
    assert not [v for v in trained.model.weights if "lora" in v.path]
    # Reference: the LoRA model as trained, restored without merging.
    from llm_tf.models.encoder import ENCODER_NAME
    from llm_tf.models.lora import apply_lora

    config = trained.config
    with_lora = trained.task.build_model()
    assert config.task.lora_targets == ["query", "value", "token_embedding"] and config.task.lora_embedding_rank == 2
    apply_lora(with_lora.get_layer(ENCODER_NAME), config.task.lora_rank, config.task.lora_alpha, config.task.lora_targets,
               trained.task.head_layers_in_encoder, config.task.lora_embedding_rank)
    assert with_lora.get_layer(ENCODER_NAME).get_layer("token_embedding").lora_embeddings_a.shape[1] == 2
    tf.train.Checkpoint(model=with_lora).restore(trained.checkpoint).expect_partial()
    inputs = {k: tf.cast(v, tf.int32) for k, v in trained.task.data.tokenizer(tf.constant(["good", "bad movie"]), seq_length=32).items()}
    np.testing.assert_allclose(trained.model(inputs).numpy(), with_lora(inputs).numpy(), atol=1e-5)


def test_fgm_trained_checkpoint_restores_into_the_plain_model(tmp_path, prepared_sample):
    run = train_tiny(prepared_sample, str(tmp_path / "fgm"), override="trainer.fgm_epsilon=0.5,trainer.train_steps=4,trainer.steps_per_loop=2")
    trained = restore.restore_trained_model(run, "latest")
    assert trained.step == 4 and type(trained.model).__name__ == "Functional"
