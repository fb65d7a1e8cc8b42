"""Tests for llm_tf/training/teacher_logits.py: precomputed logits line up and train."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.data import tfrecords
from llm_tf.errors import ConfigError
from llm_tf.training import strategies, tasks, teacher_logits, train_lib
from llm_tf.training.teacher import load_teacher
from tests.training.distillation_fixtures import distillation_config, make_teacher, teacher_dir  # noqa: F401


def test_precomputed_logits_equal_the_teacher_in_the_step_and_train(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    logits_dir = str(tmp_path / "logits")
    config = distillation_config(prepared_sample, teacher_dir)
    manifest = teacher_logits.precompute_teacher_logits(config, logits_dir, batch_size=7, chunk_size=25)
    assert manifest["splits"]["train"]["count"] == 60 and manifest["splits"]["eval"]["count"] == 16
    assert manifest["teacher"] == os.path.abspath(teacher_dir) and manifest["labels"] == ["0", "1"]

    # The records are the prepared ones, in the same order, plus the logits.
    task = tasks.build_task(config)
    original = list(tfrecords.read_tfrecords(task.data.files("train"), ["text", "label"]))
    written = [tfrecords.from_tf_example(r.numpy()) for r in tf.data.TFRecordDataset(
        teacher_logits.logits_files(logits_dir, manifest, "train"))]
    assert [w["text"] for w in written] == [o["text"].numpy().decode() for o in original]
    assert all(len(w[teacher_logits.FEATURE]) == 2 for w in written)

    # Through the training input pipeline (bucketing on: batches regrouped and cut), every batch's
    # precomputed logits equal what the teacher computes on that batch inside the step.
    config = distillation_config(prepared_sample, teacher_dir, f"task.distillation.teacher_logits_dir={logits_dir},"
                                                             "task.data.bucketing=true")
    task = tasks.build_task(config)
    teacher = load_teacher(teacher_dir)
    seen = 0
    for inputs, targets in task.build_inputs("train", training=True).take(4):
        np.testing.assert_allclose(targets["teacher_logits"].numpy(), teacher(inputs)["logits"].numpy(), atol=1e-4)
        seen += 1
    assert seen == 4
    for inputs, targets in task.build_inputs("eval", training=False):
        np.testing.assert_allclose(targets["teacher_logits"].numpy(), teacher(inputs)["logits"].numpy(), atol=1e-4)

    result = train_lib.run_experiment(config, "train_and_eval", str(tmp_path / "student"))
    assert result["step"] == 10 and np.isfinite(result["loss"]) and result["val_kl_to_teacher"] >= 0
    assert result["teacher_params"] == manifest["teacher_params"]


def test_precompute_is_deterministic_and_replaces_only_its_own_output(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    config = distillation_config(prepared_sample, teacher_dir)
    first = str(tmp_path / "a")
    teacher_logits.precompute_from_config(config, first)
    second = str(tmp_path / "b")
    summary = teacher_logits.precompute_from_config(config, second)
    assert summary["train_examples"] == 60 and summary["eval_examples"] == 16
    for name in os.listdir(os.path.join(first, "examples")):
        with (open(os.path.join(first, "examples", name), "rb") as a,
              open(os.path.join(second, "examples", name), "rb") as b):
            assert a.read() == b.read()
    teacher_logits.precompute_from_config(config, second)  # an earlier output is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and does not hold teacher logits"):
        teacher_logits.precompute_from_config(config, str(tmp_path / "other"))
    plain = tasks.experiment_config("sentence_classification")
    with pytest.raises(ConfigError, match="is for --experiment=distillation, not 'sentence_classification'"):
        teacher_logits.precompute_from_config(plain, str(tmp_path / "c"))


def test_stale_or_mismatched_logits_are_refused(tmp_path, prepared_sample):
    teacher = make_teacher(prepared_sample, str(tmp_path / "teacher"))
    logits_dir = str(tmp_path / "logits")
    teacher_logits.precompute_teacher_logits(distillation_config(prepared_sample, teacher), logits_dir)

    def trainer(override, teacher_path=teacher):
        config = distillation_config(prepared_sample, teacher_path,
                                     f"task.distillation.teacher_logits_dir={logits_dir}," + override)
        return train_lib.Trainer(config, str(tmp_path / "run"), strategies.make_strategy())

    with pytest.raises(ConfigError, match="no teacher_logits.json; write it first with llm_train"):
        trainer("task.distillation.teacher_logits_dir=" + str(tmp_path))
    with pytest.raises(ConfigError, match="computed at seq_length 32, this run uses 16"):
        trainer("task.data.seq_length=16")
    other = make_teacher(prepared_sample, str(tmp_path / "other_teacher"), seed=3)
    with pytest.raises(ConfigError,
                       match=f"holds logits of the teacher {teacher}, but task.distillation.teacher_dir is"):
        trainer("task.data.seq_length=32", teacher_path=other)
    # The teacher was trained on after the logits were computed: its checkpoint moved on.
    shutil.copytree(os.path.join(teacher, "checkpoints"), os.path.join(teacher, "best"))
    with open(os.path.join(teacher, "best", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\n')
    with pytest.raises(ConfigError, match="precompute them again"):
        trainer("task.data.seq_length=32")
    shutil.rmtree(teacher)
    with pytest.raises(ConfigError, match="teacher_dir: .*: no such directory"):
        trainer("task.data.seq_length=32")
    manifest = json.loads((tmp_path / "logits" / "teacher_logits.json").read_text())
    assert manifest["teacher_checkpoint"].endswith("checkpoints/ckpt-1")


def test_llm_train_precompute_mode(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    from tests.training.test_train_lib import llm_train

    out = tmp_path / "logits"
    result = llm_train("--experiment=distillation", "--mode=precompute_teacher_logits", f"--model_dir={out}",
                       f"--params_override=task.data.prepared_dir={prepared_sample},task.data.seq_length=32,"
                       f"task.distillation.teacher_dir={teacher_dir}")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["mode"], summary["train_examples"], summary["eval_examples"]) == (
        "precompute_teacher_logits", 60, 16)
    assert json.loads((out / "teacher_logits.json").read_text())["teacher"] == os.path.abspath(teacher_dir)
