"""Teachers for the distillation tests, made without training (seconds, not minutes).

A teacher is a tiny sentence classifier on the prepared sample with some kernels scaled up:
attention query/key/value (sharp attention, so the [CLS] output depends on the words), the
pooler and the output layer, whose bias also leans to label 0. Its predictions are confident
and differ between sentences; a randomly initialised or few-step model gives about the same
near-uniform output for every sentence, too flat to see a student move towards it. It is saved
like a training run: ``params.yaml`` plus ``checkpoints/ckpt-1``.
"""

import os
import shutil

import pytest

from tests.training.conftest import FAST

_CACHE: dict = {}

#: A student narrower than the teacher (tiny is 128 wide): hidden matching needs projections.
NARROW_STUDENT = "task.model.size=tiny,task.model.hidden_dim=64,task.model.num_layers=1,task.model.dropout=0.0"


#: Kernel path endings and their scale in :func:`make_teacher`.
SCALES = {"/query/kernel": 10.0, "/key/kernel": 10.0, "/value/kernel": 10.0, "pooled_dense/kernel": 20.0,
          "logits/kernel": 10.0}


def make_teacher(prepared_dir: str, model_dir: str, seed: int = 7) -> str:
    """Writes a tiny classifier with sharp, input-dependent logits as a training ``model_dir``; returns it."""
    import keras
    import tensorflow as tf

    from llm_tf.training import configs, tasks
    from llm_tf.training import model_dir as model_dir_lib

    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared_dir},task.model.size=tiny,{FAST}")
    model_dir_lib.save_params(config, model_dir)
    keras.utils.set_random_seed(seed)
    model = tasks.build_task(config).build_model()
    for weight in model.weights:
        scale = next((value for end, value in SCALES.items() if weight.path.endswith(end)), 1.0)
        weight.assign(weight * scale)
    model.get_layer("logits").bias.assign([1.5, -1.5])  # leans to label 0, which the balanced labels do not
    tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "checkpoints", "ckpt"))
    return model_dir


def copy_prepared(prepared_dir: str, target: str, labels: list[str] | None = None, swap_vocab: bool = False) -> str:
    """A copy of a prepared directory with its label order or vocabulary changed."""
    shutil.copytree(prepared_dir, target)
    if labels is not None:
        with open(os.path.join(target, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("".join(label + "\n" for label in labels))
    if swap_vocab:
        path = os.path.join(target, "tokenizer", "vocab.txt")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        lines[10], lines[11] = lines[11], lines[10]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return target


@pytest.fixture(scope="session")
def teacher_dir(prepared_sample, tmp_path_factory) -> str:
    """model_dir of the sharp tiny teacher on the prepared sample."""
    if "teacher" not in _CACHE:
        _CACHE["teacher"] = make_teacher(prepared_sample, str(tmp_path_factory.mktemp("teachers") / "sharp"))
    return _CACHE["teacher"]


def distillation_config(prepared_dir: str, teacher: str, override: str = ""):
    """A fast ``distillation`` config: the narrow student on the sample, taught by ``teacher``."""
    from llm_tf.training import configs, tasks

    settings = (f"task.data.prepared_dir={prepared_dir},{FAST},{NARROW_STUDENT},task.head_dropout=0.0,"
                f"task.distillation.teacher_dir={teacher},trainer.train_steps=10,trainer.steps_per_loop=10,"
                "trainer.optimizer.learning_rate=0.003,trainer.optimizer.warmup_fraction=0.0")
    settings += "," + override if override else ""
    return configs.apply_overrides(tasks.experiment_config("distillation"), [], settings)
