"""Tests for llm_tf/training/model_dir.py."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml

from llm_tf.errors import ConfigError, DataError
from llm_tf.training import model_dir as model_dir_lib
from tests.conftest import train_tiny
from tests.plot_checks import assert_png


def _predict(trained, texts):
    inputs = trained.task.data.tokenizer(tf.constant(texts), seq_length=trained.config.task.data.seq_length)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    return trained.model(inputs, training=False).numpy()


def test_restores_best_and_latest(trained_classifier):
    best = model_dir_lib.restore_trained_model(trained_classifier, "best")
    latest = model_dir_lib.restore_trained_model(trained_classifier, "latest")
    assert "/best/" in best.checkpoint and "/checkpoints/" in latest.checkpoint
    assert latest.step == 30 and best.step in (15, 30)
    assert best.config.experiment == "sentence_classification"
    assert best.task.data.labels == ["0", "1"]
    explicit = model_dir_lib.restore_trained_model(trained_classifier, latest.checkpoint)
    np.testing.assert_allclose(_predict(explicit, ["a fine film"]), _predict(latest, ["a fine film"]), atol=1e-6)


def test_restored_weights_are_the_trained_ones_not_fresh(trained_classifier):
    trained = model_dir_lib.restore_trained_model(trained_classifier, "latest")
    fresh = trained.task.build_model()
    assert not np.allclose(_predict(trained, ["a fine film", "dull"]),
                           fresh({k: tf.cast(v, tf.int32) for k, v in trained.task.data.tokenizer(
                               tf.constant(["a fine film", "dull"]), seq_length=32).items()}, training=False).numpy())


def test_missing_directory_params_and_checkpoint(tmp_path, trained_classifier):
    with pytest.raises(DataError, match="not a training directory"):
        model_dir_lib.restore_trained_model(str(tmp_path))
    copy = tmp_path / "copy"
    os.makedirs(copy)
    shutil.copy(os.path.join(trained_classifier, "params.yaml"), copy)
    with pytest.raises(DataError, match="no checkpoint to export"):
        model_dir_lib.restore_trained_model(str(copy))
    with pytest.raises(DataError, match="no such checkpoint"):
        model_dir_lib.find_checkpoint(trained_classifier, str(tmp_path / "ckpt-7"))


def test_checkpoint_that_does_not_fit_the_config_is_a_clear_error(tmp_path, trained_classifier):
    copy = tmp_path / "run"
    shutil.copytree(trained_classifier, copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["task"]["model"]["size"] = "mini"
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="checkpoint does not match the model"):
        model_dir_lib.restore_trained_model(str(copy))


def test_moved_prepared_data_can_be_given(tmp_path, trained_classifier, prepared_sample):
    copy = tmp_path / "run"
    shutil.copytree(trained_classifier, copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["task"]["data"]["prepared_dir"] = str(tmp_path / "gone")
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(DataError, match="gone"):
        model_dir_lib.restore_trained_model(str(copy))
    assert model_dir_lib.restore_trained_model(str(copy), prepared_dir=prepared_sample).task.data.labels == ["0", "1"]


def test_lora_is_merged_and_predictions_are_kept(tmp_path, prepared_sample):
    run = train_tiny(prepared_sample, str(tmp_path / "lora"),
                     override="task.lora_rank=4,task.lora_targets=[query,value,token_embedding],task.lora_embedding_rank=2,"
                              "trainer.train_steps=4,trainer.steps_per_loop=2")
    trained = model_dir_lib.restore_trained_model(run, "latest")
    assert not [v for v in trained.model.weights if "lora" in v.path]
    # Reference: the LoRA model as trained, restored without merging.
    from llm_tf.models.encoder import ENCODER_NAME
    from llm_tf.models.lora import apply_lora

    config = trained.config
    with_lora = trained.task.build_model()
    assert config.task.lora_targets == ["query", "value", "token_embedding"] and config.task.lora_embedding_rank == 2
    apply_lora(with_lora.get_layer(ENCODER_NAME), config.task.lora_rank, config.task.lora_alpha,
               config.task.lora_targets, trained.task.head_layers_in_encoder, config.task.lora_embedding_rank)
    assert with_lora.get_layer(ENCODER_NAME).get_layer("token_embedding").lora_embeddings_a.shape[1] == 2
    tf.train.Checkpoint(model=with_lora).restore(trained.checkpoint).expect_partial()
    inputs = {k: tf.cast(v, tf.int32)
              for k, v in trained.task.data.tokenizer(tf.constant(["good", "bad movie"]), seq_length=32).items()}
    np.testing.assert_allclose(trained.model(inputs).numpy(), with_lora(inputs).numpy(), atol=1e-5)


def test_fgm_trained_checkpoint_restores_into_the_plain_model(tmp_path, prepared_sample):
    run = train_tiny(prepared_sample, str(tmp_path / "fgm"),
                     override="trainer.fgm_epsilon=0.5,trainer.train_steps=4,trainer.steps_per_loop=2")
    trained = model_dir_lib.restore_trained_model(run, "latest")
    assert trained.step == 4 and type(trained.model).__name__ == "Functional"


def test_a_params_yaml_from_before_per_experiment_task_configs_still_loads(tmp_path, trained_classifier):
    # Until each experiment had its own task config, every params.yaml carried the masked-LM and
    # causal-LM keys too; those that the experiment no longer has are dropped, others still refused.
    copy = tmp_path / "old"
    shutil.copytree(trained_classifier, copy)
    params = yaml.safe_load((copy / model_dir_lib.PARAMS_FILE).read_text())
    params["task"].update(mask_rate=0.15, max_predictions_per_seq=20, generation={"strategy": "greedy"})
    (copy / model_dir_lib.PARAMS_FILE).write_text(yaml.safe_dump(params))
    config = model_dir_lib.load_config(str(copy))
    assert "mask_rate" not in config.task.as_dict() and config.task.head_dropout == params["task"]["head_dropout"]
    params["task"]["dropout_rate"] = 0.5
    (copy / model_dir_lib.PARAMS_FILE).write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"params.yaml: unknown config key 'dropout_rate'"):
        model_dir_lib.load_config(str(copy))


def test_layout_names_and_helpers(tmp_path, trained_classifier):
    assert model_dir_lib.is_training_dir(trained_classifier) and not model_dir_lib.is_training_dir(str(tmp_path))
    latest = model_dir_lib.latest_checkpoint(trained_classifier)
    assert latest.startswith(model_dir_lib.checkpoints_dir(trained_classifier))
    assert model_dir_lib.checkpoint_step(latest) == 30 and model_dir_lib.checkpoint_step("x/ckpt") == 0
    assert os.path.isfile(os.path.join(trained_classifier, model_dir_lib.ENCODER_WEIGHTS_FILE))
    assert os.path.isfile(os.path.join(model_dir_lib.best_dir(trained_classifier), model_dir_lib.BEST_INFO_FILE))
    record = model_dir_lib.write_metrics(str(tmp_path), 7, {"val_accuracy": np.float32(0.5)})
    assert record == {"step": 7, "val_accuracy": 0.5}
    assert yaml.safe_load((tmp_path / model_dir_lib.METRICS_DIR / "step_7.json").read_text()) == record
    assert yaml.safe_load((tmp_path / model_dir_lib.METRICS_FILE).read_text()) == record
    # One record per loop (30 steps, 15 a loop), each with the learning rate; the curves drawn from them.
    history = model_dir_lib.read_metrics_history(trained_classifier)
    assert [r["step"] for r in history] == [15, 30] and all(r["learning_rate"] >= 0 for r in history)
    assert_png(os.path.join(trained_classifier, model_dir_lib.TRAINING_CURVES_PNG), 600, 500)


def test_metrics_history_is_by_step_and_a_bad_record_is_named(tmp_path):
    assert model_dir_lib.read_metrics_history(str(tmp_path)) == []
    for step in (100, 20, 3):
        model_dir_lib.write_metrics(str(tmp_path), step, {"loss": step / 100})
    (tmp_path / model_dir_lib.METRICS_DIR / "notes.txt").write_text("not a record")
    assert [r["step"] for r in model_dir_lib.read_metrics_history(str(tmp_path))] == [3, 20, 100]
    (tmp_path / model_dir_lib.METRICS_DIR / "step_5.json").write_text("{")
    with pytest.raises(DataError, match=r"metrics/step_5.json: not valid JSON"):
        model_dir_lib.read_metrics_history(str(tmp_path))


def test_build_model_adds_lora_as_training_does(prepared_sample):
    from llm_tf.training import configs, tasks
    from tests.training.conftest import FAST

    config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                     f"task.data.prepared_dir={prepared_sample},{FAST},task.lora_rank=2")
    model = model_dir_lib.build_model(tasks.build_task(config))
    trainable = [w.path for w in model.trainable_weights]
    assert trainable and all("lora" in p or p.startswith(("pooled_dense", "logits")) for p in trainable), trainable
    plain = model_dir_lib.build_model(tasks.build_task(configs.apply_overrides(
        tasks.experiment_config("sentence_classification"), [], f"task.data.prepared_dir={prepared_sample},{FAST}")))
    assert not any("lora" in w.path for w in plain.weights)
