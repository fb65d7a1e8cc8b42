"""Rebuilding a trained model from a training ``model_dir`` for export.

A ``model_dir`` written by ``llm_train`` holds ``params.yaml`` (the resolved config) and
checkpoints (``checkpoints/`` latest, ``best/`` best by eval metric). Export rebuilds the
task's model in float32 from the config, restores the weights, and folds training-only
structure away: LoRA factors are merged into the kernels, the FGM wrapper is dropped.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.models.lora import apply_lora, merge_lora
from llm_tf.training import configs, tasks

#: Which checkpoint to export: the best by eval metric, or the latest.
CHECKPOINT_CHOICES = ("best", "latest")


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


def load_config(model_dir: str, prepared_dir: str | None = None) -> configs.ExperimentConfig:
    """Reads ``model_dir/params.yaml`` into the experiment's config.

    Args:
        model_dir: A training directory.
        prepared_dir: Overrides ``task.data.prepared_dir`` (the data set moved).

    Raises:
        DataError: No ``params.yaml`` (not a training directory).
        ConfigError: The file does not parse or names an unknown experiment.
    """
    path = os.path.join(model_dir, "params.yaml")
    if not os.path.isfile(path):
        raise DataError(f"{model_dir}: not a training directory (no params.yaml; run llm_train first)")
    import yaml

    with open(path, encoding="utf-8") as f:
        try:
            name = (yaml.safe_load(f) or {}).get("experiment", "")
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: bad YAML: {e}") from None
    config = tasks.experiment_config(name)
    configs.apply_overrides(config, [path], {"task": {"data": {"prepared_dir": prepared_dir}}} if prepared_dir else "")
    return config


def find_checkpoint(model_dir: str, which: str = "best") -> str:
    """Resolves ``best`` / ``latest`` / an explicit checkpoint prefix to a checkpoint path.

    ``best`` falls back to the latest checkpoint when no evaluation ever ran.

    Raises:
        DataError: No checkpoint there.
    """
    if which not in CHECKPOINT_CHOICES:
        if tf.io.gfile.exists(which + ".index"):
            return which
        raise DataError(f"{which}: no such checkpoint (expected best, latest or a checkpoint prefix)")
    candidates = ["best", "checkpoints"] if which == "best" else ["checkpoints"]
    for sub in candidates:
        path = tf.train.latest_checkpoint(os.path.join(model_dir, sub))
        if path:
            return path
    raise DataError(f"{model_dir}: no checkpoint to export (looked in {', '.join(candidates)}/)")


def restore_trained_model(model_dir: str, checkpoint: str = "best", prepared_dir: str | None = None) -> TrainedModel:
    """Rebuilds the model of a training run and restores a checkpoint into it.

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
    model = task.build_model()
    lora = config.task.lora_rank
    if lora:
        apply_lora(model.get_layer(ENCODER_NAME), lora, config.task.lora_alpha, config.task.lora_targets,
                   getattr(task, "head_layers_in_encoder", ()), config.task.lora_embedding_rank)
    # Keras 3 tracks a functional model's weights by layer, so a checkpoint written from the
    # FGM wrapper (same layers) restores into the plain model.
    try:
        status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        first = str(e).splitlines()[0][:300]
        raise ConfigError(f"{path}: checkpoint does not match the model in {model_dir}/params.yaml: {first}") from None
    if lora:
        model = merge_lora(model, task.build_model)
    step = int(path.rsplit("-", 1)[-1]) if path.rsplit("-", 1)[-1].isdigit() else 0
    return TrainedModel(config, task, model, path, step)
