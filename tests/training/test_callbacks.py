"""Tests for llm_tf/training/callbacks.py."""

import json

import pytest
import tensorflow as tf

from llm_tf.training import callbacks


def test_direction_of_metrics():
    assert callbacks.higher_is_better("val_accuracy") and callbacks.higher_is_better("val_entity_f1")
    assert not callbacks.higher_is_better("val_loss") and not callbacks.higher_is_better("val_perplexity")


def _saver(tmp_path, metric):
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    latest = tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=3)
    best = tf.train.CheckpointManager(checkpoint, str(tmp_path / "best"), max_to_keep=1)
    return callbacks.CheckpointSaver(latest, best, metric, str(tmp_path / "best" / "best.json"), step), step


def test_best_checkpoint_keeps_the_lowest_perplexity_and_the_highest_accuracy(tmp_path):
    for metric, values, expected_step in (("val_perplexity", [50.0, 30.0, 40.0], 2),
                                          ("val_accuracy", [0.5, 0.7, 0.6], 2)):
        saver, step = _saver(tmp_path / metric, metric)
        for i, value in enumerate(values, start=1):
            step.assign(i)
            saver.on_epoch_end(i - 1, {metric: value})
        best = json.loads((tmp_path / metric / "best" / "best.json").read_text())
        assert best["step"] == expected_step and best["value"] == values[1], metric


def test_metrics_writer_records_the_loop_logs_and_the_learning_rate(tmp_path):
    import keras

    from llm_tf.training import model_dir as model_dir_lib

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.0)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(5)
    writer = callbacks.MetricsWriter(str(tmp_path), model.optimizer.iterations)
    writer.set_model(model)
    writer.on_epoch_end(0, {"loss": 0.25})
    record = json.loads((tmp_path / model_dir_lib.METRICS_DIR / "step_5.json").read_text())
    assert record == {"step": 5, "loss": 0.25, "learning_rate": pytest.approx(0.05)}
