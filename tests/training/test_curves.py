"""Tests for llm_tf/training/curves.py: the training curves drawn from metrics/step_<N>.json, and
train_lib drawing them at the end of a run, a resumed one included."""

import os

import pytest

from llm_tf.training import configs, curves, tasks, train_lib
from llm_tf.training import model_dir as model_dir_lib
from tests.plot_checks import assert_png
from tests.training.conftest import FAST

RECORDS = [{"step": 0, "val_loss": 0.69, "val_accuracy": 0.5},                     # evaluate() before training
           {"step": 10, "loss": 0.7, "accuracy": 0.5, "learning_rate": 0.001},     # a loop without evaluation
           {"step": 20, "loss": 0.5, "val_loss": 0.55, "val_accuracy": 0.75, "learning_rate": 0.0005}]


def test_curve_data_takes_one_point_per_loop_and_per_evaluation():
    data = curves.curve_data(RECORDS, "val_accuracy")
    assert data["loss"] == [(10, 0.7), (20, 0.5)] and data["learning_rate"] == [(10, 0.001), (20, 0.0005)]
    assert data["eval"] == [(0, 0.5), (20, 0.75)] and data["val_loss"] == [(0, 0.69), (20, 0.55)]
    assert curves.curve_data(RECORDS, "val_loss")["eval"] == []          # drawn with the loss already


def test_write_training_curves_from_the_records_of_a_model_dir(tmp_path):
    assert curves.write_training_curves(str(tmp_path), "val_accuracy") is None      # nothing recorded yet
    assert not (tmp_path / model_dir_lib.TRAINING_CURVES_PNG).exists()
    for record in RECORDS:
        model_dir_lib.write_metrics(str(tmp_path), record["step"], {k: v for k, v in record.items() if k != "step"})
    path = curves.write_training_curves(str(tmp_path), "val_accuracy")
    assert path == str(tmp_path / model_dir_lib.TRAINING_CURVES_PNG)
    assert_png(path, 600, 600)


def test_records_without_learning_rate_or_evaluation_still_draw(tmp_path):
    old = [{"step": 10, "loss": 0.7}, {"step": 20, "loss": 0.6}]        # written before the learning rate was
    curves.render_curves(curves.curve_data(old, "val_accuracy"), str(tmp_path / "old.png"))
    assert_png(tmp_path / "old.png", 600, 200)
    with pytest.raises(ValueError, match="nothing to draw"):
        curves.render_curves(curves.curve_data([{"step": 10, "learning_rate": 0.1}], "val_accuracy"),
                             str(tmp_path / "none.png"))


def test_a_resumed_run_draws_its_whole_history(tmp_path, prepared_sample):
    def run(train_steps):
        config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                         f"task.data.prepared_dir={prepared_sample},task.model.size=tiny,{FAST},"
                                         f"trainer.train_steps={train_steps},trainer.steps_per_loop=10")
        return train_lib.run_experiment(config, "train_and_eval", str(tmp_path))

    run(20)
    first = os.path.getmtime(tmp_path / model_dir_lib.TRAINING_CURVES_PNG)
    run(40)                                             # restores ckpt-20 and trains two more loops
    data = curves.curve_data(model_dir_lib.read_metrics_history(str(tmp_path)), "val_accuracy")
    assert [step for step, _ in data["loss"]] == [10, 20, 30, 40]
    assert [step for step, _ in data["eval"]] == [10, 20, 30, 40]
    assert [step for step, _ in data["learning_rate"]] == [10, 20, 30, 40]
    assert os.path.getmtime(tmp_path / model_dir_lib.TRAINING_CURVES_PNG) >= first
    assert_png(tmp_path / model_dir_lib.TRAINING_CURVES_PNG, 600, 600)


def test_a_failure_to_draw_does_not_fail_the_run(tmp_path, caplog, monkeypatch):
    def broken(model_dir, metric):
        raise RuntimeError("no display")

    monkeypatch.setattr(curves, "write_training_curves", broken)
    assert train_lib.draw_training_curves(str(tmp_path), "val_accuracy") is None
    assert "training curves not drawn: RuntimeError: no display" in caplog.text
