"""Tests for llm_tf/training/mlm_pretrain.py and pre-training -> fine-tuning (encoder_weights.py)."""

import os

import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.text.alignment import IGNORE_ID
from llm_tf.training import configs, strategies, tasks, train_lib
from tests.training.conftest import FAST


def experiment(name, prepared, override=""):
    config = tasks.experiment_config(name)
    return configs.apply_overrides(config, [],
                                   f"task.data.prepared_dir={prepared},{FAST}" + (f",{override}" if override else ""))


def test_dynamic_masking(prepared_sample):
    task = tasks.build_task(experiment("mlm_pretrain", prepared_sample, "task.max_predictions_per_seq=5"))
    tokenizer = task.data.tokenizer
    batches = list(task.build_inputs("eval", training=False))
    features, labels = batches[0]
    ids, positions, labels = features["token_ids"].numpy(), features["mask_positions"].numpy(), labels.numpy()
    assert positions.shape == labels.shape == (16, 5)
    scored = labels != IGNORE_ID
    assert scored.any(axis=1).all()  # every sentence has something to predict
    rows = np.nonzero(scored)[0]
    chosen = ids[rows, positions[scored]]
    assert (chosen == tokenizer.mask_id).mean() > 0.5  # 80% [MASK], 10% random, 10% kept
    assert not np.isin(labels[scored], [tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id]).any()


def test_masks_are_drawn_anew_when_a_sentence_comes_back(prepared_sample):
    import keras

    keras.utils.set_random_seed(7)  # the outcome must not depend on the global seed state
    task = tasks.build_task(experiment("mlm_pretrain", prepared_sample, "task.max_predictions_per_seq=5"))
    masks_by_sentence: dict[tuple, set] = {}
    for features, labels in task.build_inputs("train", training=True).take(12):  # 192 rows: about 3 epochs of 60
        ids = features["token_ids"].numpy().copy()
        positions, labels = features["mask_positions"].numpy(), labels.numpy()
        for row in range(ids.shape[0]):
            scored = labels[row] != IGNORE_ID
            ids[row, positions[row][scored]] = labels[row][scored]  # undo the masking
            key = tuple(ids[row][features["padding_mask"].numpy()[row] == 1])
            masks_by_sentence.setdefault(key, set()).add(tuple(sorted(positions[row][scored])))
    assert len(masks_by_sentence) <= 60  # unmasking gave back the 60 training sentences
    assert sum(len(masks) > 1 for masks in masks_by_sentence.values()) >= 10  # returning sentences got new masks


def test_pretrain_then_fine_tune_from_its_encoder(tmp_path, prepared_sample):
    pretrain = experiment("mlm_pretrain", prepared_sample, "trainer.train_steps=20,trainer.steps_per_loop=10")
    result = train_lib.run_experiment(pretrain, "train", str(tmp_path / "mlm"))
    assert result["step"] == 20 and np.isfinite(result["loss"])
    assert {"encoder.weights.h5", "encoder.json"} <= set(os.listdir(tmp_path / "mlm"))

    fine_tune = experiment("sentence_classification", prepared_sample, f"task.init_checkpoint={tmp_path / 'mlm'}")
    trainer = train_lib.Trainer(fine_tune, str(tmp_path / "ft"), strategies.make_strategy())
    assert trainer.initialized_from == str(tmp_path / "mlm" / "encoder.weights.h5")
    reference = train_lib.Trainer(pretrain, str(tmp_path / "mlm"), strategies.make_strategy())
    reference.restore()
    for ours, theirs in zip(trainer.model.get_layer("encoder").weights, reference.model.get_layer("encoder").weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_init_checkpoint_of_another_size_names_the_difference(tmp_path, prepared_sample):
    train_lib.run_experiment(experiment("mlm_pretrain", prepared_sample,
                                        "trainer.train_steps=10,trainer.steps_per_loop=10"),
                             "train", str(tmp_path / "mlm"))
    mini = experiment("sentence_classification", prepared_sample,
                      f"task.init_checkpoint={tmp_path / 'mlm'},task.model.size=mini")
    with pytest.raises(ConfigError,
                       match="does not fit this encoder: num_layers 2 there, 4 here; num_heads 2 there, 4 here"):
        train_lib.Trainer(mini, str(tmp_path / "ft"), strategies.make_strategy())
    missing = experiment("sentence_classification", prepared_sample, f"task.init_checkpoint={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="no such file"):
        train_lib.Trainer(missing, str(tmp_path / "ft2"), strategies.make_strategy())


def test_bad_mask_rate(prepared_sample):
    with pytest.raises(ConfigError, match="task.mask_rate must be in"):
        tasks.build_task(experiment("mlm_pretrain", prepared_sample, "task.mask_rate=1.5"))
