"""The experiment registry and the :class:`Task` contract every experiment implements.

A task, in TF Model Garden style, is a config plus ``build_model``, ``build_inputs``,
``loss`` and ``metrics`` (abstract in :class:`Task`), and hooks with defaults that an
experiment overrides when it needs them (``extra_eval``, ``resolve_config``,
``initialize_model``, ``training_model``, ``parameter_report``). Experiments are registered by
name with their default config and task class; ``llm_train --experiment=NAME`` starts from
those defaults.

The registry does not import the experiments: importing an experiment's module registers it,
and :mod:`llm_tf.training.registry_imports` imports all the built-in ones (as Model Garden's
``registry_imports``). Entry points (the binaries, the pipeline's components, export) import it.
"""

import abc
import functools
from collections.abc import Callable

import keras
import tensorflow as tf

from llm_tf.data.prepared import load_prepared
from llm_tf.errors import ConfigError, DataError
from llm_tf.training import configs

_EXPERIMENTS: dict[str, tuple[Callable[[], configs.ExperimentConfig], type]] = {}


def register(name: str, task_class: type):
    """Registers an experiment: a default-config factory and the task class that runs it."""

    def decorator(factory: Callable[[], configs.ExperimentConfig]):
        _EXPERIMENTS[name] = (factory, task_class)
        return factory

    return decorator


def experiment_names() -> list[str]:
    """Names of the registered experiments."""
    return sorted(_EXPERIMENTS)


def _registered(name: str) -> tuple[Callable[[], configs.ExperimentConfig], type]:
    """The (default-config factory, task class) of ``name``; a ConfigError naming the valid ones otherwise."""
    if name not in _EXPERIMENTS:
        if not _EXPERIMENTS:
            raise ConfigError(f"unknown experiment '{name}': no experiment is registered (import "
                              "llm_tf.training.registry_imports to register the built-in ones)")
        raise ConfigError(f"unknown experiment '{name}' (valid: {', '.join(experiment_names())})")
    return _EXPERIMENTS[name]


def experiment_config(name: str) -> configs.ExperimentConfig:
    """The default config of a registered experiment.

    Raises:
        ConfigError: Unknown name (the valid ones are listed).
    """
    config = _registered(name)[0]()
    config.experiment = name
    return config


def resolve_experiment(name: str, config_files: list[str] | tuple[str, ...] = (), params_override: str | dict = "",
                       runtime: dict | None = None) -> configs.ExperimentConfig:
    """An experiment's config as ``llm_train`` and the pipeline's Trainer resolve it.

    The registered defaults, then the YAML files in order, then ``params_override``, then the
    runtime settings given as flags (``strategy``, ``num_devices``, ``tpu``; None values are
    left as the config has them).

    Args:
        name: The registered experiment.
        config_files: YAML config files, later ones win.
        params_override: Dotted ``key=value`` pairs, a YAML/JSON string or a nested dict.
        runtime: ``runtime.*`` values from flags.

    Raises:
        ConfigError: Unknown experiment, missing or bad file, unknown key.

    Example:
        >>> from llm_tf.training import registry_imports  # noqa: F401
        >>> resolve_experiment("sentence_classification", params_override="trainer.train_steps=10").trainer.train_steps
        10
    """
    config = experiment_config(name)
    configs.apply_overrides(config, list(config_files), params_override)
    given = {k: v for k, v in (runtime or {}).items() if v is not None}
    if given:
        configs.apply_overrides(config, [], {"runtime": given})
    return config


def task_class(name: str) -> type["Task"]:
    """The task class of a registered experiment.

    Raises:
        ConfigError: Unknown name.
    """
    return _registered(name)[1]


def build_task(config: configs.ExperimentConfig) -> "Task":
    """Instantiates the task that runs ``config``."""
    return task_class(config.experiment)(config)


def label_table(labels: list[str]) -> tf.lookup.StaticHashTable:
    """Label name -> id (-1 for a name outside the vocabulary)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(labels), tf.range(len(labels), dtype=tf.int32)),
        default_value=-1,
    )


def _finish_inputs(
    dataset: tf.data.Dataset, count: int, batch_size: int, training: bool, skip_batches: int, autotune: bool
) -> tf.data.Dataset:
    """Eval: declare the size and shard by data (multi-worker); train: skip to the resume position.

    Both: tf.data's autotuner on or off (``task.data.autotune``, see ``DataConfig``).
    """
    options = tf.data.Options()
    options.autotune.enabled = autotune
    if not training and count:
        # Known size: Keras shows a total and does not warn when the finite eval split ends.
        # Multi-worker: shard by data, so each global batch is split over the workers and Keras's
        # step count (this cardinality) covers the split; unsharded, every worker would step
        # through the first half of each batch only. File sharding would cut below the assertion.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


#: Bucket lengths when steps run as TensorFlow graphs: every 2 tokens to 16, then every 4 to
#: 32, 8 to 64, 16 to 128, 32 to 256 and 64 to 512, so a batch computes at most 1/8-1/4 more
#: positions than its bucket's shortest length. Each length is its own input shape, which costs
#: nothing here (one traced step function for all shapes).
DEFAULT_BUCKETS = (4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
                   160, 192, 224, 256, 320, 384, 448)
#: Bucket lengths when every input shape is compiled (``trainer.jit_compile``, TPU): fewer shapes.
COMPILED_BUCKETS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)


def bucket_boundaries(seq_length: int, given: list[int] | None = None, compiled: bool = False) -> list[int]:
    """Sorted bucket lengths below ``seq_length`` (``seq_length`` itself is the last bucket).

    Args:
        seq_length: The longest sequence (the last bucket).
        given: ``task.data.bucket_boundaries``; empty for the defaults.
        compiled: Every input shape is compiled (XLA, TPU): the coarser defaults
            (:data:`COMPILED_BUCKETS`) instead of :data:`DEFAULT_BUCKETS`.

    Raises:
        ConfigError: A given boundary is not a positive integer below ``seq_length``.

    Example:
        >>> bucket_boundaries(32)
        [4, 6, 8, 10, 12, 14, 16, 20, 24, 28]
        >>> bucket_boundaries(64, compiled=True)
        [8, 16, 24, 32, 48]
    """
    if given:
        bad = [b for b in given if not 0 < b < seq_length]
        if bad:
            raise ConfigError(f"task.data.bucket_boundaries must lie in (0, seq_length={seq_length}), got {bad}")
        return sorted(set(given))
    return [b for b in (COMPILED_BUCKETS if compiled else DEFAULT_BUCKETS) if b < seq_length]


def _cut_to_bucket(features: dict, labels, boundaries: list[int], per_token_labels: bool):
    """Cuts a padded batch to the smallest boundary (or full length) holding its longest example."""
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
    full = tf.shape(features["token_ids"])[1]
    candidates = tf.constant(boundaries + [2**30], tf.int32)
    length = tf.minimum(candidates[tf.argmax(tf.cast(candidates >= longest, tf.int32))], full)
    sequence_keys = ("token_ids", "segment_ids", "padding_mask")
    features = {k: (v[:, :length] if k in sequence_keys else v) for k, v in features.items()}
    if per_token_labels:
        labels = labels[:, :length]
    return features, labels


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
        # Multi-worker: shard by data, not files. AUTO picks file sharding for TFRecords and fails
        # when a split has fewer shards than there are workers (e.g. SST-2's single shard).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    return dataset


class Task(abc.ABC):
    """Base of the tasks: the config, the prepared data, and the input pipeline's common part.

    Subclasses set ``prepared_for`` (the ``llm_prepare`` task they read, or None for any) and
    implement the abstract :meth:`build_model`, :meth:`build_inputs` (usually
    :meth:`batched_inputs` with a per-batch transform), :meth:`loss` and :meth:`metrics`; the
    other methods are hooks with defaults. The transform runs as written, without AutoGraph
    (which cost ~1.2 s a pipeline to convert the tokenizers' Python); a subclass whose transform
    branches or loops on tensor values in Python sets ``autograph_transform = True``.

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

    #: Whether labels have one entry per sequence position (cut with the inputs by bucketing).
    per_token_labels = False
    #: Whether the transform needs AutoGraph (Python ``if``/``for`` on tensor values).
    autograph_transform = False
    #: Encoder layers that belong to the task head (stay trainable under LoRA).
    head_layers_in_encoder: tuple[str, ...] = ()

    @abc.abstractmethod
    def build_model(self) -> keras.Model:
        """The task's model (what is exported), built fresh."""

    @abc.abstractmethod
    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of (model inputs, labels) of ``split``; ``skip_batches`` resumes a training stream."""

    @abc.abstractmethod
    def loss(self):
        """The Keras loss (a ``keras.losses.Loss`` or a callable of labels and predictions)."""

    @abc.abstractmethod
    def metrics(self) -> list:
        """The Keras metrics compiled into the model."""

    @staticmethod
    def resolve_config(config: configs.ExperimentConfig) -> None:
        """Completes ``config`` in place before ``params.yaml`` is written and the task is built.

        Default: nothing (distillation takes a student's dimensions from its teacher here).
        """

    def initialize_model(self, model: keras.Model) -> str | None:
        """Sets a fresh (not resumed) model's starting weights; returns what it started from, or None.

        Runs when neither ``task.init_checkpoint`` nor ``task.init_preset`` is set. Default: nothing.
        """
        return None

    def training_model(self, model: keras.Model) -> keras.Model:
        """Training-only structure around the task's model (default: the model itself).

        Its checkpoints must still restore into :meth:`build_model`'s model.
        """
        return model

    def parameter_report(self) -> dict:
        """Parameter counts beyond the model's own (default: none; distillation adds its teacher's)."""
        return {}

    def batched_inputs(self, split: str, training: bool, skip_batches: int, transform) -> tf.data.Dataset:
        """Serialized records of ``split`` -> batches -> ``transform`` -> ready for Keras.

        Training data is repeated and shuffled once with the config's seed (see
        :func:`_training_records`) and skips ``skip_batches`` on resume; eval data declares
        its size. With ``task.data.bucketing``, training batches group similar lengths and
        every batch is cut to its bucket boundary (all deterministic, so resume still lands on
        the same batches).
        """
        data = self.config.task.data
        batch_size = data.global_batch_size if training else data.eval_batch_size
        if not self.autograph_transform:
            transform = tf.autograph.experimental.do_not_convert(transform)
        dataset = _training_records(self.record_files(split), training, data)
        if not data.bucketing:
            dataset = dataset.batch(batch_size, drop_remainder=training).map(
                transform, num_parallel_calls=tf.data.AUTOTUNE)
            return _finish_inputs(dataset, self.data.count(split), batch_size, training, skip_batches, data.autotune)
        compiled = self.config.trainer.jit_compile or self.config.runtime.strategy == "tpu"
        boundaries = bucket_boundaries(data.seq_length, data.bucket_boundaries, compiled)
        cut = tf.autograph.experimental.do_not_convert(
            functools.partial(_cut_to_bucket, boundaries=boundaries, per_token_labels=self.per_token_labels))
        if training:
            # Tokenize in chunks, then regroup single examples into batches of similar length.
            dataset = dataset.batch(1024).map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
            dataset = dataset.bucket_by_sequence_length(
                lambda features, labels: tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32)),
                bucket_boundaries=[b + 1 for b in boundaries],
                bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
                drop_remainder=True,
            )
        else:
            dataset = dataset.batch(batch_size).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        return _finish_inputs(dataset, self.data.count(split), batch_size, training, skip_batches, data.autotune)

    def record_files(self, split: str) -> list[str]:
        """The TFRecord shards :meth:`batched_inputs` reads for ``split`` (the prepared data's)."""
        return self.data.files(split)

    def extra_eval(self, model) -> dict:
        """Metrics beyond Keras's, computed over the eval split (none by default)."""
        return {}

