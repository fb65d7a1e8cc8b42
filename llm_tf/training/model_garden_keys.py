"""TF Model Garden's experiment-config keys, read as ours (``docs/configs.md`` has the table).

A Model Garden YAML (``official/nlp/configs/experiments/*.yaml``) or ``--params_override``
names keys such as ``runtime.distribution_strategy``, ``trainer.validation_steps``,
``trainer.optimizer_config`` or ``task.train_data.global_batch_size``. :func:`translate` turns
one source's nested values into our keys before the strict override in
:func:`llm_tf.training.configs.apply_overrides`, so ``llm_train``, the pipeline's Trainer and
``params.yaml`` (which holds our keys only) all see the same config.

Each Model Garden key is, by design:

* mapped: its value is converted and set on our key (``runtime.num_gpus`` ->
  ``runtime.num_devices``; a whole ``optimizer_config`` -> ``trainer.optimizer``);
* fixed: our code does one thing (``encoder.type: bert``, ``metric_type: accuracy``); that
  value is accepted, any other is a :class:`ConfigError`;
* ignored: it tunes something we do not have (``summary_interval``, ``input_path``: our data
  comes from ``task.data.prepared_dir``); it is listed in one warning per config;
* refused: a value that would train something else here (an optimizer other than AdamW/Adam,
  a cosine schedule, ``decay_steps`` != ``train_steps``) is a :class:`ConfigError` naming the key.

A key of ours is never translated, and a Model Garden key that is neither of the above is an
unknown key (under a Model Garden section such as ``task.train_data`` the error lists the
keys known there). One source giving our key and an alias of it (or two aliases of one key)
with different values is an error naming both.

This module holds the key tables and the translator; :mod:`llm_tf.training.model_garden_values`
converts the values, :mod:`llm_tf.training.model_garden_optimizer` reads ``trainer.optimizer_config``.
"""

import copy
import difflib
from collections.abc import Callable

import yaml
from official.modeling.hyperparams import params_dict

from llm_tf.errors import ConfigError
from llm_tf.training.model_garden_optimizer import OPTIMIZATION, OPTIMIZER_IGNORED, OptimizerTranslation
from llm_tf.training.model_garden_values import (
    SKIP,
    Invalid,
    best_metric,
    boolean,
    integer,
    mixed_precision,
    num_gpus,
    optional,
    rate,
    same,
    strategy,
    validation_steps,
)

_DATA_SOURCE = "our data comes from task.data.prepared_dir (llm_prepare)"
_TF_DATA = "tf.data tuning: our input pipeline sets its own (task.data.autotune)"
_DATA_IGNORED = {
    "input_path": _DATA_SOURCE, "tfds_name": _DATA_SOURCE, "tfds_split": _DATA_SOURCE,
    "tfds_data_dir": _DATA_SOURCE, "tfds_as_supervised": _DATA_SOURCE, "tfds_skip_decoding_feature": _DATA_SOURCE,
    "file_type": _DATA_SOURCE, "label_field": _DATA_SOURCE, "label_name": _DATA_SOURCE,
    "include_example_id": "predictions are written by llm_predict",
    "is_training": "train_data trains and validation_data evaluates",
    "drop_remainder": "training drops the last partial batch, evaluation keeps it",
    **{name: _TF_DATA for name in (
        "cache", "cycle_length", "block_length", "ram_budget", "deterministic", "sharding", "prefetch_buffer_size",
        "autotune_algorithm", "enable_tf_data_service", "tf_data_service_address", "tf_data_service_job_name",
        "enable_shared_tf_data_service_between_parallel_trainers", "apply_tf_data_service_before_batching",
        "trainer_id")},
}
_DATA_FIXED = {"label_type": ("int", "labels are class names (no regression)")}

#: Model Garden key -> (our key, converter). Only read where the key is not one of ours.
MAPPED: dict[str, tuple[str, Callable]] = {
    "runtime.distribution_strategy": ("runtime.strategy", strategy),
    "runtime.num_gpus": ("runtime.num_devices", num_gpus),
    "runtime.mixed_precision_dtype": ("trainer.mixed_precision", mixed_precision),
    "runtime.enable_xla": ("trainer.jit_compile", boolean),
    "trainer.validation_steps": ("trainer.eval_steps", validation_steps),
    "trainer.best_checkpoint_eval_metric": ("trainer.best_metric", best_metric),
    "task.train_data.global_batch_size": ("task.data.global_batch_size", integer(1)),
    "task.train_data.seq_length": ("task.data.seq_length", integer(1)),
    "task.train_data.shuffle_buffer_size": ("task.data.shuffle_buffer", integer(1)),
    "task.train_data.seed": ("task.data.seed", optional(integer(0))),
    "task.validation_data.global_batch_size": ("task.data.eval_batch_size", integer(1)),
    "task.validation_data.seq_length": ("task.data.seq_length", integer(1)),
    "task.model.encoder.bert.num_layers": ("task.model.num_layers", integer(1)),
    "task.model.encoder.bert.hidden_size": ("task.model.hidden_dim", integer(1)),
    "task.model.encoder.bert.num_attention_heads": ("task.model.num_heads", integer(1)),
    "task.model.encoder.bert.intermediate_size": ("task.model.intermediate_dim", integer(1)),
    "task.model.encoder.bert.dropout_rate": ("task.model.dropout", rate),
    "task.model.encoder.bert.max_position_embeddings": ("task.model.max_sequence_length", integer(1)),
}

#: Model Garden key -> (the one value our code has, why). Another value is a ConfigError.
FIXED: dict[str, tuple] = {
    "task.metric_type": ("accuracy", "sentence classification reports accuracy"),
    "task.hub_module_url": ("", "TF Hub modules are not loaded here: use task.init_preset or task.init_checkpoint"),
    "task.model.encoder.type": ("bert", "the encoder is keras-hub's BERT"),
    "task.model.encoder.bert.hidden_activation": ("gelu", "keras-hub's BERT uses gelu"),
    "task.model.encoder.bert.type_vocab_size": (2, "keras-hub's BERT has 2 segments"),
    "task.model.encoder.bert.norm_first": (False, "keras-hub's BERT is post-LayerNorm"),
    "task.model.encoder.bert.embedding_size": (None, "the embedding size is the hidden size"),
    **{f"task.{split}.{name}": fixed for split in ("train_data", "validation_data")
       for name, fixed in _DATA_FIXED.items()},
}

_INTERVAL = "checkpoints, evaluations and summaries happen every trainer.steps_per_loop steps"
_RUNTIME_TUNING = "TensorFlow's defaults are used"
#: Model Garden key -> why it has no equivalent here (listed in the warning, then dropped).
IGNORED: dict[str, str] = {
    "runtime.gpu_thread_mode": _RUNTIME_TUNING,
    "runtime.per_gpu_thread_count": _RUNTIME_TUNING,
    "runtime.dataset_num_private_threads": _RUNTIME_TUNING,
    "runtime.num_packs": _RUNTIME_TUNING,
    "runtime.batchnorm_spatial_persistent": "no batch normalization in BERT",
    "runtime.tpu_enable_xla_dynamic_padder": _RUNTIME_TUNING,
    "runtime.loss_scale": "mixed_float16 uses Keras's dynamic loss scaling",
    "runtime.run_eagerly": "steps always run as TensorFlow graphs",
    "runtime.worker_hosts": "multi_worker_mirrored reads the cluster from TF_CONFIG",
    "runtime.task_index": "multi_worker_mirrored reads the cluster from TF_CONFIG",
    "runtime.num_cores_per_replica": "no model parallelism",
    "runtime.default_shard_dim": "no model parallelism",
    "runtime.use_tpu_mp_strategy": "no model parallelism",
    "trainer.summary_interval": _INTERVAL,
    "trainer.checkpoint_interval": _INTERVAL,
    "trainer.validation_interval": _INTERVAL,
    "trainer.best_checkpoint_export_subdir": "the best checkpoint is kept in model_dir/best",
    "trainer.best_checkpoint_metric_comp": "lower is better for losses and perplexity, higher for the others",
    "trainer.validation_summary_subdir": "Keras's TensorBoard callback writes model_dir/logs/validation",
    "trainer.train_tf_while_loop": "steps run in Keras's fit loop (trainer.steps_per_execution)",
    "trainer.train_tf_function": "steps always run as TensorFlow graphs",
    "trainer.eval_tf_function": "steps always run as TensorFlow graphs",
    "trainer.eval_tf_while_loop": "steps run in Keras's evaluate loop",
    "trainer.allow_tpu_summary": _INTERVAL,
    "trainer.continuous_eval_timeout": "llm_train --mode=continuous_eval waits --eval_timeout seconds",
    "trainer.loss_upper_bound": "no loss blow-up recovery",
    "trainer.recovery_begin_steps": "no loss blow-up recovery",
    "trainer.recovery_max_trials": "no loss blow-up recovery",
    "trainer.preemption_on_demand_checkpoint": "a checkpoint is written every trainer.steps_per_loop steps",
    "task.init_cls_pooler": "the pooler comes with the encoder's weights",
    "task.model.num_classes": "the classes are the prepared data's labels",
    "task.model.use_encoder_pooler": "the head reads the encoder's pooled [CLS] output",
    "task.model.encoder.bert.vocab_size": "the vocabulary size is the prepared data's tokenizer's",
    "task.model.encoder.bert.attention_dropout_rate": "keras-hub's BERT applies task.model.dropout there too",
    "task.model.encoder.bert.initializer_range": "keras-hub's BERT initializes with stddev 0.02",
    "task.model.encoder.bert.output_range": "the whole sequence is encoded",
    "task.model.encoder.bert.return_all_encoder_outputs": "the encoder's outputs are fixed",
    "task.model.encoder.bert.return_attention_scores": "the encoder's outputs are fixed",
    "task.model.encoder.bert.return_word_embeddings": "the encoder's outputs are fixed",
    **{f"task.{split}.{name}": why for split in ("train_data", "validation_data")
       for name, why in _DATA_IGNORED.items()},
    "task.validation_data.shuffle_buffer_size": "evaluation does not shuffle",
    "task.validation_data.seed": "evaluation does not shuffle",
    **OPTIMIZER_IGNORED,
}

#: The Model Garden keys that set one of ours (suggested for a misspelt key).
ALIASES = (*(key for key in MAPPED if not key.startswith("task.model.encoder.")), OPTIMIZATION)

#: Model Garden sections that have no counterpart of ours: every key in them must be known.
SECTIONS = ("task.train_data", "task.validation_data", "task.model.encoder", "task.model.encoder.bert")


def parse_override(params_override: str):
    """A ``--params_override`` string as Model Garden parses it (dotted ``k=v`` pairs, YAML or JSON).

    Returns the nested dict, or the string itself when it is not one (a YAML file's path, which
    ``override_params_dict`` then reads).
    """
    try:
        text = params_dict.nested_csv_str_to_json_str(params_override)
    except ValueError:
        text = params_override
    try:
        values = yaml.load(text, Loader=params_dict._LOADER)  # Model Garden's loader: 1e-5 is a float
    except yaml.YAMLError:
        return params_override
    return values if isinstance(values, dict) else params_override


def translate(values: dict, config, source: str) -> tuple[dict, list[str]]:
    """One source's values with Model Garden keys replaced by ours.

    Args:
        values: Nested config values (a YAML file's, or a parsed ``--params_override``); not modified.
        config: The config they will override (tells our keys from Model Garden's, and gives
            ``trainer.train_steps`` when ``values`` has none, for warm-up and decay steps).
        source: The file or flag, for errors.

    Returns:
        The values in our keys, and the Model Garden keys that were ignored (dotted, in order).

    Raises:
        ConfigError: A Model Garden value with no equivalent here, an unknown key in a Model
            Garden section, or our key and an alias of it given different values.
    """
    translator = _Translator(config, values, source)
    try:
        translated = translator.walk(values, ())
    except Invalid as e:
        raise ConfigError(f"{source}: {e}") from None
    translator.merge(translated)
    return translated, translator.ignored


def note(ignored: list[tuple[str, list[str]]]) -> str:
    """The one warning line for the Model Garden keys ignored, per source (empty when none)."""
    parts = [f"{source}: {', '.join(keys)}" for source, keys in ignored if keys]
    if not parts:
        return ""
    count = sum(len(keys) for _, keys in ignored)
    return (f"ignored {count} Model Garden config key(s) with no equivalent here "
            f"(docs/configs.md says why): {'; '.join(parts)}")


class _Translator(OptimizerTranslation):
    """Translates one source's values: Model Garden keys to assignments of ours, and the ignored keys."""

    def __init__(self, config, values: dict, source: str):
        self.config = config
        self.values = values
        self.source = source
        self.assignments: list[tuple[str, object, str]] = []  # (our key, value, Model Garden key=value)
        self.ignored: list[str] = []

    def error(self, message: str):
        raise ConfigError(f"{self.source}: {message}")

    def set(self, ours: str, value, origin: str, given) -> None:
        self.assignments.append((ours, value, f"{origin}={given!r}"))

    def node(self, path: tuple):
        node = self.config
        for part in path:
            node = getattr(node, part, None) if isinstance(node, params_dict.ParamsDict) else None
        return node if isinstance(node, params_dict.ParamsDict) else None

    def walk(self, values: dict, path: tuple) -> dict:
        """Our keys kept (and walked into), Model Garden keys at this level translated."""
        node = self.node(path)
        ours = set(node.as_dict()) if node is not None else set()
        kept = {}
        for key, value in values.items():
            full = ".".join((*path, str(key)))
            if key in ours:
                child = getattr(node, key)
                nested = isinstance(value, dict) and isinstance(child, params_dict.ParamsDict)
                kept[key] = self.walk(value, (*path, key)) if nested else copy.deepcopy(value)
            elif not self.model_garden(full, value):
                kept[key] = copy.deepcopy(value)  # unknown: the strict override reports it
        return kept

    def model_garden(self, key: str, value) -> bool:
        """Translates one Model Garden key; False when ``key`` is not one."""
        if key in MAPPED:
            ours, convert = MAPPED[key]
            converted = convert(value, key)
            if converted is not SKIP:
                self.set(ours, converted, key, value)
        elif key in FIXED:
            expected, why = FIXED[key]
            if not same(value, expected) and not (expected == "" and value is None):
                self.error(f"{key}: only {expected!r} is supported, got {value!r} ({why})")
        elif key in IGNORED:
            self.ignored.append(key)
        elif key in SECTIONS:
            if value is None:
                return True
            if not isinstance(value, dict):
                self.error(f"{key}: expected a mapping of Model Garden keys, got {value!r}")
            for name, item in value.items():
                full = f"{key}.{name}"
                if not self.model_garden(full, item):
                    self.unknown(full)
        elif key == OPTIMIZATION:
            self.optimization(value)
        else:
            return False
        return True

    def unknown(self, key: str):
        section, name = key.rsplit(".", 1)
        known = sorted({k.rsplit(".", 1)[1] for k in (*MAPPED, *FIXED, *IGNORED, *SECTIONS)
                        if k.rsplit(".", 1)[0] == section})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"did you mean: {', '.join(close)}" if close else f"known there: {', '.join(known)}"
        self.error(f"unknown Model Garden config key '{key}' ({hint})")

    def merge(self, translated: dict) -> None:
        """Sets the assignments on ``translated``; our key and an alias (or two aliases) must agree."""
        origins: dict[str, str] = {}
        for ours, value, origin in self.assignments:
            *parents, leaf = ours.split(".")
            node = translated
            for part in parents:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            if leaf in node and not same(node[leaf], value):
                other = origins.get(ours, f"{ours}={node[leaf]!r}")
                self.error(f"{origin} and {other} both set {ours}, to different values "
                           f"({value!r} and {node[leaf]!r}): give one")
            node[leaf] = value
            origins[ours] = origin
