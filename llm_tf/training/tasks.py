"""The experiment registry and what tasks share.

A task, in TF Model Garden style, is a config plus ``build_model``, ``build_inputs``,
``loss``, ``metrics`` and ``extra_eval`` (metrics Keras cannot compute batch by batch, such as
entity F1). Experiments are registered by name with their default config and task class;
``llm_train --experiment=NAME`` starts from those defaults.
"""

from typing import Callable

import tensorflow as tf

from llm_tf.errors import ConfigError, DataError
from llm_tf.training import configs
from llm_tf.training.prepared import load_prepared

_EXPERIMENTS: dict[str, tuple[Callable[[], configs.ExperimentConfig], type]] = {}


def register(name: str, task_class: type):
    """Registers an experiment: a default-config factory and the task class that runs it."""

    def decorator(factory: Callable[[], configs.ExperimentConfig]):
        _EXPERIMENTS[name] = (factory, task_class)
        return factory

    return decorator


def _load_builtin_experiments() -> None:
    # Importing a task module registers its experiments.
    from llm_tf.training import mlm_pretrain, sentence_classification, token_classification  # noqa: F401


def experiment_names() -> list[str]:
    """Names of the registered experiments."""
    _load_builtin_experiments()
    return sorted(_EXPERIMENTS)


def experiment_config(name: str) -> configs.ExperimentConfig:
    """The default config of a registered experiment.

    Raises:
        ConfigError: Unknown name (the valid ones are listed).
    """
    _load_builtin_experiments()
    if name not in _EXPERIMENTS:
        raise ConfigError(f"unknown experiment '{name}' (valid: {', '.join(experiment_names())})")
    config = _EXPERIMENTS[name][0]()
    config.experiment = name
    return config


def build_task(config: configs.ExperimentConfig):
    """Instantiates the task that runs ``config``."""
    _load_builtin_experiments()
    return _EXPERIMENTS[config.experiment][1](config)


def label_table(labels: list[str]) -> tf.lookup.StaticHashTable:
    """Label name -> id (-1 for a name outside the vocabulary)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(labels), tf.range(len(labels), dtype=tf.int32)),
        default_value=-1,
    )


def _finish_inputs(dataset: tf.data.Dataset, count: int, batch_size: int, training: bool, skip_batches: int) -> tf.data.Dataset:
    """Eval: declare the size and turn auto-sharding off; train: skip to the resume position."""
    if not training and count:
        # Known size: Keras shows a total and does not warn when the finite eval split ends.
        # Eval is not auto-sharded (every worker scores the whole split), which also keeps
        # the auto-shard rewrite from complaining about assert_cardinality.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _training_records(files: list[str], training: bool, data) -> tf.data.Dataset:
    """Serialized examples; training data is repeated and shuffled once with the config's seed.

    One seeded shuffle over the repeated stream means every iterator of the dataset yields the
    same sequence (Keras iterates it once to peek and again to train), so skipping
    ``skip_batches`` lands exactly where an interrupted run stopped. Epochs still differ in
    order because the shuffle buffer slides across epoch boundaries.
    """
    dataset = tf.data.TFRecordDataset(files)
    if training:
        dataset = dataset.repeat().shuffle(data.shuffle_buffer, seed=data.seed, reshuffle_each_iteration=False)
    return dataset


class Task:
    """Base of the tasks: the config, the prepared data, and the input pipeline's common part.

    Subclasses set ``prepared_for`` (the ``llm_prepare`` task they read, or None for any) and
    implement ``build_model``, ``loss``, ``metrics`` and a per-batch ``transform`` used by
    :meth:`batched_inputs`.

    Args:
        config: The experiment config.

    Raises:
        DataError: The prepared data is missing or was prepared for another task.
    """

    prepared_for: str | None = None
    metric_name = "accuracy"

    def __init__(self, config: configs.ExperimentConfig):
        self.config = config
        data = config.task.data
        self.data = load_prepared(data.prepared_dir, data.seq_length)
        if self.prepared_for and self.data.task != self.prepared_for:
            raise DataError(f"{data.prepared_dir}: prepared for '{self.data.task}', not {self.prepared_for}")

    def batched_inputs(self, split: str, training: bool, skip_batches: int, transform) -> tf.data.Dataset:
        """Serialized records of ``split`` -> batches -> ``transform`` -> ready for Keras.

        Training data is repeated and shuffled once with the config's seed (see
        :func:`_training_records`) and skips ``skip_batches`` on resume; eval data declares
        its size.
        """
        data = self.config.task.data
        batch_size = data.global_batch_size if training else data.eval_batch_size
        dataset = _training_records(self.data.files(split), training, data)
        dataset = dataset.batch(batch_size, drop_remainder=training).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        return _finish_inputs(dataset, self.data.count(split), batch_size, training, skip_batches)

    def extra_eval(self, model) -> dict:
        """Metrics beyond Keras's, computed over the eval split (none by default)."""
        return {}

