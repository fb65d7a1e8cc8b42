"""The training directory (``model_dir``): its layout, and every read and write of it.

``llm_train`` writes, and export, distillation teachers, generation and the pipeline read::

    params.yaml              the resolved config of the last run
    checkpoints/ckpt-<step>  latest checkpoints (trainer.max_to_keep)
    best/ckpt-<step>         best checkpoint by trainer.best_metric on eval, best/best.json
    metrics.json             the latest evaluation; metrics/step_<N>.json one per training loop
                             (training loss and learning rate) and per evaluation (val_*)
    training_curves.png      loss, eval metric and learning rate per step, drawn from metrics/
    pruning.json             with trainer.pruning: sparsity achieved per pruned weight and overall
    encoder.weights.h5       the encoder after training (encoder.json: its dimensions), for
                             another run's task.init_checkpoint
    logs/                    TensorBoard summaries

This module owns those names (the constants below) and the one way to rebuild a model as
training built it (:func:`build_model`, LoRA included), which both training and
:func:`restore_trained_model` use. ``model_dir`` may be a bucket (``gs://...``): every read and
write here goes through ``tf.io.gfile`` or :mod:`llm_tf.io_utils`.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf
import yaml
from absl import logging

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_json, atomic_write_text, storage_errors
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.models.lora import apply_lora, merge_lora
from llm_tf.training import configs, tasks

PARAMS_FILE = "params.yaml"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
#: Inside ``best/``: the step and metric of the best checkpoint.
BEST_INFO_FILE = "best.json"
METRICS_FILE = "metrics.json"
#: One ``step_<N>.json`` per training loop and per evaluation.
METRICS_DIR = "metrics"
PRUNING_FILE = "pruning.json"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"
ENCODER_SHAPE_FILE = "encoder.json"
LOGS_DIR = "logs"
#: Drawn from ``metrics/`` at the end of a run (:mod:`llm_tf.training.curves`).
TRAINING_CURVES_PNG = "training_curves.png"

#: Which checkpoint to restore: the best by eval metric, or the latest.
CHECKPOINT_CHOICES = ("best", "latest")

#: Task keys every experiment had before each experiment got its own task config; a
#: ``params.yaml`` written then still loads (the keys its experiment no longer has are dropped).
_FORMER_SHARED_TASK_KEYS = ("label_smoothing", "head_dropout", "mask_rate", "max_predictions_per_seq", "lora_rank",
                            "lora_alpha", "lora_targets", "lora_embedding_rank", "generation")


@dataclasses.dataclass
class TrainedModel:
    """A restored model and what export needs to know about it.

    Attributes:
        config: The experiment config from ``params.yaml``.
        task: The task object (prepared data: tokenizer, labels, features).
        model: The inference model (float32, no LoRA variables).
        checkpoint: The checkpoint path restored.
        step: Its global step.
    """

    config: configs.ExperimentConfig
    task: tasks.Task
    model: keras.Model
    checkpoint: str
    step: int


def params_path(model_dir: str) -> str:
    """``model_dir/params.yaml``."""
    return os.path.join(model_dir, PARAMS_FILE)


def is_training_dir(path: str) -> bool:
    """Whether ``path`` holds a ``params.yaml`` (was written by ``llm_train``)."""
    with storage_errors(path):
        return tf.io.gfile.exists(params_path(path))


def checkpoints_dir(model_dir: str) -> str:
    """Where the latest checkpoints go."""
    return os.path.join(model_dir, CHECKPOINTS_DIR)


def best_dir(model_dir: str) -> str:
    """Where the best checkpoint goes."""
    return os.path.join(model_dir, BEST_DIR)


def latest_checkpoint(model_dir: str) -> str | None:
    """The latest checkpoint's prefix, or None when training has not saved one."""
    with storage_errors(model_dir):
        return tf.train.latest_checkpoint(checkpoints_dir(model_dir))


def save_params(config: configs.ExperimentConfig, model_dir: str) -> str:
    """Writes the resolved config to ``model_dir/params.yaml`` atomically; returns the path."""
    io_utils.makedirs(model_dir)
    path = params_path(model_dir)
    atomic_write_text(path, yaml.safe_dump(config.as_dict(), sort_keys=True, default_flow_style=False))
    return path


def write_metrics(model_dir: str, step: int, logs: dict) -> dict:
    """Writes one evaluation's metrics (``metrics/step_<N>.json`` and ``metrics.json``, atomically).

    Returns:
        The record written: ``step`` and the float metrics.
    """
    record = {"step": step, **{k: float(v) for k, v in logs.items()}}
    io_utils.makedirs(os.path.join(model_dir, METRICS_DIR))
    atomic_write_json(os.path.join(model_dir, METRICS_DIR, f"step_{step}.json"), record)
    atomic_write_json(os.path.join(model_dir, METRICS_FILE), record)
    return record


def read_metrics_history(model_dir: str) -> list[dict]:
    """Every ``metrics/step_<N>.json`` record, by step (empty when none was written).

    Raises:
        DataError: A record that is not valid JSON (its path is named).
    """
    directory = os.path.join(model_dir, METRICS_DIR)
    steps = []
    for name in io_utils.listdir(directory) if io_utils.isdir(directory) else []:
        stem, ext = os.path.splitext(name)
        if ext == ".json" and stem.startswith("step_") and stem[5:].isdigit():
            steps.append(int(stem[5:]))
    records = []
    for step in sorted(steps):
        path = os.path.join(directory, f"step_{step}.json")
        try:
            records.append(json.loads(io_utils.read_text(path)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON: {e}") from None
    return records


def _read_params(path: str) -> dict:
    try:
        with storage_errors(path), tf.io.gfile.GFile(path, "r") as f:
            values = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: bad YAML: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return values


def load_config(model_dir: str, prepared_dir: str | None = None) -> configs.ExperimentConfig:
    """Reads ``model_dir/params.yaml`` into the experiment's config.

    Args:
        model_dir: A training directory.
        prepared_dir: Overrides ``task.data.prepared_dir`` (the data set moved).

    Raises:
        DataError: No ``params.yaml`` (not a training directory).
        ConfigError: The file does not parse or names an unknown experiment.
    """
    path = params_path(model_dir)
    if not is_training_dir(model_dir):
        raise DataError(f"{model_dir}: not a training directory (no {PARAMS_FILE}; run llm_train first)")
    values = _read_params(path)
    config = tasks.experiment_config(values.get("experiment", ""))
    task_values = values.get("task")
    if isinstance(task_values, dict):
        known = set(config.task.as_dict())
        values["task"] = {k: v for k, v in task_values.items() if k in known or k not in _FORMER_SHARED_TASK_KEYS}
    configs.apply_overrides(config, [], values, source=path)
    if prepared_dir:
        configs.apply_overrides(config, [], {"task": {"data": {"prepared_dir": prepared_dir}}})
    return config


def find_checkpoint(model_dir: str, which: str = "best") -> str:
    """Resolves ``best`` / ``latest`` / an explicit checkpoint prefix to a checkpoint path.

    ``best`` falls back to the latest checkpoint when no evaluation ever ran.

    Raises:
        DataError: No checkpoint there.
    """
    if which not in CHECKPOINT_CHOICES:
        with storage_errors(which):
            if tf.io.gfile.exists(which + ".index"):
                return which
        raise DataError(f"{which}: no such checkpoint (expected best, latest or a checkpoint prefix)")
    candidates = [BEST_DIR, CHECKPOINTS_DIR] if which == "best" else [CHECKPOINTS_DIR]
    for sub in candidates:
        with storage_errors(model_dir):
            path = tf.train.latest_checkpoint(os.path.join(model_dir, sub))
        if path:
            return path
    raise DataError(f"{model_dir}: no checkpoint to export (looked in {', '.join(candidates)}/)")


def checkpoint_step(path: str) -> int:
    """The global step in a checkpoint prefix (``.../ckpt-1200`` -> 1200; 0 when it has none)."""
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def build_model(task: tasks.Task) -> keras.Model:
    """The task's model as training builds it: ``task.build_model()`` plus LoRA when configured.

    Args:
        task: The task (its config's ``task.lora_rank`` > 0 adds LoRA factors to the encoder and
            freezes the rest, except the task's :attr:`~tasks.Task.head_layers_in_encoder`).

    Returns:
        The model (with LoRA variables when configured).

    Raises:
        ConfigError: Bad LoRA settings.
    """
    model = task.build_model()
    lora = task.config.task.lora()
    if lora is not None:
        layers = apply_lora(model.get_layer(ENCODER_NAME), lora.rank, lora.alpha, lora.targets,
                            task.head_layers_in_encoder, lora.embedding_rank)
        logging.info("LoRA rank %d on %d layers", lora.rank, layers)
    return model


def restore_trained_model(model_dir: str, checkpoint: str = "best", prepared_dir: str | None = None) -> TrainedModel:
    """Rebuilds the model of a training run in float32 and restores a checkpoint into it.

    LoRA factors are merged into the kernels; a checkpoint written from the FGM wrapper (the
    same layers) restores into the plain model.

    Args:
        model_dir: The training directory.
        checkpoint: ``best``, ``latest`` or a checkpoint prefix.
        prepared_dir: Where the prepared data (tokenizer, labels) is, if it moved.

    Returns:
        The restored :class:`TrainedModel`.

    Raises:
        DataError: Missing directory, config, checkpoint or prepared data.
        ConfigError: The checkpoint does not fit the model the config describes.
    """
    config = load_config(model_dir, prepared_dir)
    path = find_checkpoint(model_dir, checkpoint)
    keras.mixed_precision.set_global_policy("float32")
    task = tasks.build_task(config)
    model = build_model(task)
    # Keras 3 tracks a functional model's weights by layer, so a checkpoint written from the
    # FGM wrapper (same layers) restores into the plain model.
    try:
        status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        first = str(e).splitlines()[0][:300]
        raise ConfigError(f"{path}: checkpoint does not match the model in {params_path(model_dir)}: {first}") from None
    if config.task.lora() is not None:
        model = merge_lora(model, task.build_model)
    return TrainedModel(config, task, model, path, checkpoint_step(path))
