"""Tests for llm_tf/training/distillation.py: the experiment on tiny models and its errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.export import export_dir, exporter
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training import strategies, tasks, train_lib
from tests.training.conftest import FAST
from tests.training.distillation_fixtures import (  # noqa: F401
    NARROW_STUDENT,
    copy_prepared,
    distillation_config,
    make_teacher,
    teacher_dir,
)

TEXTS = ["the movie was great", "a dull , lifeless film", "bad writing , bad acting"]


def packed(task, texts):
    inputs = task.data.tokenizer(tf.constant(texts), seq_length=task.config.task.data.seq_length)
    return {k: tf.cast(v, tf.int32) for k, v in inputs.items()}


def test_distillation_lowers_kl_and_exports_a_plain_student(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    # Pure distillation (alpha 1) with hidden matching from the narrow student's only layer to the
    # teacher's last; the student is 64 wide, the teacher 128, so a projection is learned.
    config = distillation_config(prepared_sample, teacher_dir,
                                 "task.distillation.alpha=1.0,task.distillation.temperature=1.0,"
                                 "task.distillation.hidden_weight=0.1,task.distillation.student_layers=[0],"
                                 "task.distillation.teacher_layers=[-1]")
    model_dir = str(tmp_path / "student")
    model_dir_lib.save_params(config, model_dir)
    trainer = train_lib.Trainer(config, model_dir, strategies.make_strategy())
    before = trainer.evaluate()
    result = trainer.train(evaluate=True)
    assert result["step"] == 10
    assert result["val_kl_to_teacher"] < 0.5 * before["val_kl_to_teacher"]
    assert result["val_hidden_mse"] < before["val_hidden_mse"]
    # Parameter report: the teacher, the student, and the training-only projection (64 -> 128).
    assert result["projection_params"] == 64 * 128 + 128
    assert result["trainable_params"] == result["student_params"] + result["projection_params"]
    assert result["teacher_params"] > result["student_params"] > 0
    assert result["student_teacher_ratio"] == pytest.approx(result["student_params"] / result["teacher_params"])

    # The checkpoint holds the projection (for resume); the restored student has none of it.
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    assert any("hidden_projection_0" in name for name, _ in tf.train.list_variables(latest))
    restored = model_dir_lib.restore_trained_model(model_dir, "latest")
    assert not any("projection" in w.path for w in restored.model.weights)
    assert len(restored.model.weights) == len(trainer.model.weights) - 2
    inputs = packed(restored.task, TEXTS)
    np.testing.assert_allclose(restored.model(inputs, training=False).numpy(),
                               trainer.model(inputs, training=False)["logits"].numpy(), atol=1e-5)

    # llm_export treats the student as a sentence classifier; its variables are the student's.
    version = exporter.export_saved_model(model_dir, str(tmp_path / "serving"), checkpoint="latest", warmup_count=0)
    saved = [name for name, _ in tf.train.list_variables(os.path.join(version.path, "variables", "variables"))]
    assert not any("projection" in name for name in saved)
    served = tf.saved_model.load(version.path).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served["scores"].numpy(), tf.nn.softmax(restored.model(inputs, training=False)).numpy(),
                               atol=1e-5)
    assert export_dir.load_export_info(version.path)["experiment"] == "distillation"


@pytest.mark.parametrize("override,match", [
    ("task.distillation.alpha=1.5", r"task.distillation.alpha must be in \[0, 1\], got 1.5"),
    ("task.distillation.alpha=-0.1", r"task.distillation.alpha must be in \[0, 1\], got -0.1"),
    ("task.distillation.alpha_end=2.0", r"task.distillation.alpha_end must be in \[0, 1\], got 2.0"),
    ("task.distillation.temperature=0.0", "task.distillation.temperature must be > 0, got 0.0"),
    ("task.distillation.temperature_end=-1.0", "task.distillation.temperature_end must be > 0, got -1.0"),
    ("task.distillation.schedule=step", "unknown schedule 'step'"),
    ("task.distillation.hidden_weight=1.0,task.distillation.teacher_layers=[0,1]", "must pair up"),
    ("task.distillation.hidden_weight=1.0,task.distillation.teacher_logits_dir=x", "hidden states are not precomputed"),
])
def test_bad_settings_are_refused_before_anything_runs(prepared_sample, override, match):
    config = distillation_config(prepared_sample, "unused", override)
    with pytest.raises(ConfigError, match=match):
        tasks.build_task(config)


def trainer_for(config, tmp_path):
    return train_lib.Trainer(config, str(tmp_path / "run"), strategies.make_strategy())


def test_missing_or_unusable_teacher(tmp_path, prepared_sample):
    cases = [("", "task.distillation.teacher_dir is not set"),
             (str(tmp_path / "nowhere"), f"task.distillation.teacher_dir: {tmp_path / 'nowhere'}: no such directory"),
             (str(tmp_path), "neither a training model_dir .params.yaml. nor an exported SavedModel")]
    for teacher, match in cases:
        with pytest.raises(ConfigError, match=match):
            trainer_for(distillation_config(prepared_sample, teacher), tmp_path)


def test_teacher_with_other_labels_or_vocabulary_names_both(tmp_path, prepared_sample):
    reordered = make_teacher(copy_prepared(prepared_sample, str(tmp_path / "p1"), labels=["1", "0"]),
                             str(tmp_path / "t1"))
    with pytest.raises(ConfigError, match=(rf"the teacher {reordered} predicts labels \['1', '0'\], "
                                           rf"the student's prepared data {prepared_sample} has \['0', '1'\]")):
        trainer_for(distillation_config(prepared_sample, reordered), tmp_path)
    other_vocab = make_teacher(copy_prepared(prepared_sample, str(tmp_path / "p2"), swap_vocab=True),
                               str(tmp_path / "t2"))
    with pytest.raises(ConfigError, match=(rf"the teacher's vocabulary {tmp_path}/p2/tokenizer/vocab.txt "
                                           rf"\(\d+ entries\) differs from the student's "
                                           rf"{prepared_sample}/tokenizer/vocab.txt .*line 11")):
        trainer_for(distillation_config(prepared_sample, other_vocab), tmp_path)


def test_bad_layers_and_fgm_are_refused(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    hidden = ("task.distillation.hidden_weight=1.0,task.distillation.student_layers=[3],"
              "task.distillation.teacher_layers=[0]")
    with pytest.raises(ConfigError,
                       match=r"task.distillation.student_layers: layer 3 does not exist \(the encoder has 1"):
        trainer_for(distillation_config(prepared_sample, teacher_dir, hidden), tmp_path)
    with pytest.raises(ConfigError, match="FGM is not supported with distillation"):
        trainer_for(distillation_config(prepared_sample, teacher_dir, "trainer.fgm_epsilon=1.0"), tmp_path)


def test_gradient_accumulation_over_two_replicas_equals_a_larger_batch(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    # The teacher runs inside each replica's step; k=2 micro-batches of 8 on two logical CPUs
    # train like batches of 16 on one device (alpha and T are constant).
    settings = (f"task.data.prepared_dir={prepared_sample},{FAST},{NARROW_STUDENT},task.head_dropout=0.0,"
                f"task.distillation.teacher_dir={teacher_dir},trainer.optimizer.learning_rate=0.003,"
                "trainer.optimizer.warmup_fraction=0.0,trainer.optimizer.decay=constant")
    runs = {"mirrored": (2, "mirrored", "task.data.global_batch_size=8,trainer.train_steps=8,trainer.steps_per_loop=8,"
                                        "trainer.optimizer.gradient_accumulation_steps=2"),
            "one_device": (1, "one_device",
                           "task.data.global_batch_size=16,trainer.train_steps=4,trainer.steps_per_loop=4")}
    executable = shutil.which("llm_train") or os.path.join(os.path.dirname(sys.executable), "llm_train")
    results = {}
    for name, (devices, strategy, override) in runs.items():
        run = subprocess.run([executable, "--experiment=distillation", f"--model_dir={tmp_path / name}",
                              "--mode=train_and_eval", f"--strategy={strategy}", f"--num_devices={devices}",
                              f"--params_override={settings},{override}"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    assert results["mirrored"]["step"] == 8 and results["one_device"]["step"] == 4
    for key in ("val_loss", "val_kl_to_teacher"):
        assert results["mirrored"][key] == pytest.approx(results["one_device"][key], rel=1e-5), key
