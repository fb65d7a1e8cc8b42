"""Tests for llm_tf/training/sentence_classification.py."""

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import DataError
from llm_tf.training import configs, tasks
from tests.training.conftest import FAST


def task_for(prepared, override=""):
    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [],
                            f"task.data.prepared_dir={prepared},{FAST}" + (f",{override}" if override else ""))
    return tasks.build_task(config)


def test_inputs_are_tokenized_batches_with_label_ids(prepared_sample):
    task = task_for(prepared_sample)
    features, labels = next(iter(task.build_inputs("eval", training=False)))
    assert {k: (v.dtype, tuple(v.shape)) for k, v in features.items()} == {
        "token_ids": (tf.int32, (16, 32)), "segment_ids": (tf.int32, (16, 32)), "padding_mask": (tf.int32, (16, 32)),
    }
    assert sorted(set(labels.numpy().tolist())) == [0, 1]
    assert task.build_inputs("eval", training=False).cardinality().numpy() == 1


def test_training_inputs_repeat_and_skip_to_a_position(prepared_sample):
    task = task_for(prepared_sample)
    full = [x[0]["token_ids"].numpy() for x in task.build_inputs("train", training=True).take(7)]
    resumed = [x[0]["token_ids"].numpy() for x in task.build_inputs("train", training=True, skip_batches=5).take(2)]
    np.testing.assert_array_equal(full[5], resumed[0])
    np.testing.assert_array_equal(full[6], resumed[1])


def test_label_smoothing_loss_matches_hand_computation(prepared_sample):
    task = task_for(prepared_sample, "task.label_smoothing=0.2")
    logits = tf.constant([[2.0, -1.0], [0.5, 0.5]])
    labels = tf.constant([0, 1])
    targets = np.array([[0.9, 0.1], [0.1, 0.9]])  # 1 - 0.2 + 0.2 / 2 on the true class
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = -(targets * log_probs).sum(axis=1).mean()
    assert float(task.loss()(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_prepared_data_of_another_task_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a prepared data set"):
        task_for(str(tmp_path))
