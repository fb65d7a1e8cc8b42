"""Tests for llm_tf/training/callbacks.py."""

import json

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
