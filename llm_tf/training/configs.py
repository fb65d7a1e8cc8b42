"""Experiment configs in TF Model Garden style: dataclasses on ``official.modeling.hyperparams``.

An :class:`ExperimentConfig` is built from a registered experiment's defaults, then
overridden by YAML files (``--config_file``, later wins) and ``--params_override`` (dotted
keys, ``task.model.size=mini,trainer.train_steps=500``); the resolved config is written to
``model_dir/params.yaml`` on every run.

Model Garden's own keys are read too, wherever ours are (``runtime.distribution_strategy``,
``trainer.optimizer_config``, ``task.train_data``, ...): :mod:`llm_tf.training.model_garden_keys`
translates them before the strict override, so ``params.yaml`` holds our keys only
(``docs/configs.md`` has the table).
"""

import dataclasses
import difflib

import yaml
from absl import logging
from official.modeling.hyperparams import base_config, params_dict

from llm_tf import io_utils
from llm_tf.errors import ConfigError
from llm_tf.training import model_garden_keys

#: Model sizes by name: (layers, hidden size, attention heads); the feed-forward size is 4x.
MODEL_SIZES = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "base": (12, 768, 12),
}


@dataclasses.dataclass
class ModelConfig(base_config.Config):
    """The encoder: a keras-hub BERT backbone of a named size (fields > 0 override the size)."""

    size: str = "tiny"
    num_layers: int = 0
    hidden_dim: int = 0
    num_heads: int = 0
    intermediate_dim: int = 0
    dropout: float = 0.1
    max_sequence_length: int = 512

    def dimensions(self) -> dict:
        """Returns ``num_layers``, ``hidden_dim``, ``num_heads``, ``intermediate_dim``.

        Raises:
            ConfigError: Unknown size, or a hidden size the heads do not divide.
        """
        if self.size not in MODEL_SIZES:
            raise ConfigError(f"unknown model size '{self.size}' (expected one of: {', '.join(MODEL_SIZES)})")
        layers, hidden, heads = MODEL_SIZES[self.size]
        dims = {
            "num_layers": self.num_layers or layers,
            "hidden_dim": self.hidden_dim or hidden,
            "num_heads": self.num_heads or heads,
        }
        dims["intermediate_dim"] = self.intermediate_dim or 4 * dims["hidden_dim"]
        if dims["hidden_dim"] % dims["num_heads"]:
            raise ConfigError(f"hidden_dim {dims['hidden_dim']} is not divisible by num_heads {dims['num_heads']}")
        return dims


@dataclasses.dataclass
class DataConfig(base_config.Config):
    """Input: a directory written by ``llm_prepare`` and how to batch it.

    ``bucketing`` groups training examples of similar length into batches and cuts every batch
    (train and eval) to the smallest bucket boundary that holds its longest example, instead
    of padding all to ``seq_length``; ``bucket_boundaries`` default to every 2 tokens up to
    16, then every 4 to 32, 8 to 64, 16 to 128, 32 to 256, 64 to 512 (those below
    ``seq_length``), or to 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384 when every input
    shape is compiled (``trainer.jit_compile``, the ``tpu`` strategy).

    ``autotune`` turns tf.data's autotuner on for the training and eval pipelines. It is off
    by default: its thread is only stopped at its next scheduled wake-up, so destroying an
    iterator (the end of every ``fit`` and evaluation) waits for it (9-25 s measured); without
    it ``AUTOTUNE`` parallelism is the number of cores and prefetch buffers grow on demand,
    which measured the same step time on SST-2.
    """

    prepared_dir: str = ""
    train_split: str = "train"
    eval_split: str = "eval"
    seq_length: int = 128
    global_batch_size: int = 32
    eval_batch_size: int = 64
    shuffle_buffer: int = 10000
    seed: int = 42
    bucketing: bool = False
    bucket_boundaries: list[int] = dataclasses.field(default_factory=list)
    autotune: bool = False


@dataclasses.dataclass
class OptimizerConfig(base_config.Config):
    """AdamW with linear warm-up, then linear/polynomial decay, and global-norm clipping.

    LayerNorm weights and biases are excluded from weight decay. With
    ``gradient_accumulation_steps`` = k > 1 the weights change every k steps, with the mean
    gradient of k batches (an effective batch k times larger, under any strategy);
    ``trainer.train_steps`` still counts batches.
    """

    learning_rate: float = 1e-4
    end_learning_rate: float = 0.0
    warmup_fraction: float = 0.1
    decay: str = "linear"
    power: float = 1.0
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clipnorm: float = 1.0
    gradient_accumulation_steps: int = 1


@dataclasses.dataclass
class GenerationConfig(base_config.Config):
    """Text generation defaults of a causal LM (``causal_lm``): see ``llm_tf.models.generation``.

    ``strategy`` is ``greedy``, ``top_k`` (sample among the ``top_k`` best) or ``top_p``
    (sample from the nucleus of mass ``top_p``, capped at ``top_k`` tokens when > 0); the
    logits are divided by ``temperature`` before sampling; ``seed`` makes sampling
    reproducible; a prompt's continuation ends at ``[SEP]`` or after ``max_new_tokens``.
    """

    strategy: str = "greedy"
    max_new_tokens: int = 32
    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """LoRA as configured: ``rank`` factors scaled by ``alpha / rank`` on the ``targets`` layers."""

    rank: int
    alpha: float
    targets: tuple[str, ...]
    embedding_rank: int


@dataclasses.dataclass
class TaskConfig(base_config.Config):
    """What is learned, the part every experiment shares: the model and the data.

    Each experiment subclasses it with its own fields (:class:`FineTuningTaskConfig` for the
    classifiers; the masked-LM and causal-LM configs in their experiment modules), so a key
    that does not apply to an experiment is an unknown key there.

    ``init_checkpoint`` starts the encoder from an earlier run (its ``model_dir``, or the
    ``encoder.weights.h5`` in it), e.g. our own ``mlm_pretrain``. ``init_preset`` starts it
    from a pre-trained BERT checkpoint (a Hugging Face directory, a keras-hub preset directory
    or a named preset such as ``all_minilm_l6_v2``), which also sets the encoder's dimensions
    (``model.size`` is ignored; see ``llm_tf.training.init_preset``).
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    init_checkpoint: str = ""
    init_preset: str = ""

    def lora(self) -> LoraSettings | None:
        """The LoRA settings when LoRA is on (never for this base: see :class:`FineTuningTaskConfig`)."""
        return None


@dataclasses.dataclass
class FineTuningTaskConfig(TaskConfig):
    """A task head on the encoder, fine-tuned: the classifiers' task config.

    ``label_smoothing`` and ``head_dropout`` shape the head's training. ``lora_rank`` > 0
    freezes the encoder and trains LoRA factors (scaled by ``lora_alpha / lora_rank``; 0 means
    1) on the ``lora_targets`` layers, plus the task head; ``token_embedding`` among them adapts
    the embedding table, at ``lora_embedding_rank`` (0: ``lora_rank``).
    """

    label_smoothing: float = 0.0
    head_dropout: float = 0.1
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: list[str] = dataclasses.field(default_factory=lambda: ["query", "value"])
    lora_embedding_rank: int = 0

    def lora(self) -> LoraSettings | None:
        """The LoRA settings, or None when ``lora_rank`` is 0."""
        if not self.lora_rank:
            return None
        return LoraSettings(self.lora_rank, self.lora_alpha, tuple(self.lora_targets), self.lora_embedding_rank)


#: Variable-path globs pruned by default: the kernels of the encoder's attention (query, key,
#: value, output) and feed-forward Dense layers, the pooler and the task head (no embeddings,
#: LayerNorm or biases).
PRUNING_INCLUDE = (
    "transformer_layer_*/self_attention*/kernel",
    "transformer_layer_*/feedforward_*/kernel",
    "pooled_dense/kernel",
    "logits/kernel",
)


@dataclasses.dataclass
class PruningConfig(base_config.Config):
    """Magnitude pruning (``llm_tf.training.pruning``); on when ``target_sparsity`` > 0.

    Sparsity follows TF-MOT's ``PolynomialDecay`` from ``initial_sparsity`` at ``begin_step``
    to ``target_sparsity`` at ``end_step`` (0: ``train_steps``) with exponent ``power``; masks
    are recomputed every ``frequency`` steps. ``include`` holds globs over variable paths
    (``*`` spans ``/``) of the weights to prune.
    """

    target_sparsity: float = 0.0
    initial_sparsity: float = 0.0
    begin_step: int = 0
    end_step: int = 0
    frequency: int = 100
    power: float = 3.0
    include: list[str] = dataclasses.field(default_factory=lambda: list(PRUNING_INCLUDE))


@dataclasses.dataclass
class TrainerConfig(base_config.Config):
    """How long to train, how often to evaluate and checkpoint, and training techniques.

    ``fgm_epsilon`` > 0 adds FGM adversarial training on the token embeddings; ``pruning``
    prunes weights by magnitude while training.

    ``steps_per_execution`` is how many training steps run per call into the TensorFlow graph
    (Keras's ``steps_per_execution``): 0 (the default) picks, with the ``one_device`` strategy,
    the largest of 16, 8, 4, 2, 1 that divides ``steps_per_loop``, and 1 with the others; a
    given value must divide ``steps_per_loop``, and values above 1 need ``one_device``
    (TensorFlow fails to run a replicated step's collectives inside the multi-step loop).
    Several steps a call save the per-step Python and dispatch overhead (SST-2, tiny: 22.5 ->
    21.0 ms a step at 8); the progress bar then moves that many steps at a time.
    """

    train_steps: int = 1000
    steps_per_loop: int = 100
    steps_per_execution: int = 0
    eval_steps: int = 0
    max_to_keep: int = 3
    best_metric: str = "accuracy"
    early_stopping_patience: int = 0
    jit_compile: bool = False
    mixed_precision: str = ""
    fgm_epsilon: float = 0.0
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    pruning: PruningConfig = dataclasses.field(default_factory=PruningConfig)


@dataclasses.dataclass
class RuntimeConfig(base_config.Config):
    """Where to run: the distribution strategy and its devices."""

    strategy: str = "one_device"
    num_devices: int = 1
    tpu: str = ""
    all_reduce_alg: str = ""


@dataclasses.dataclass
class ExperimentConfig(base_config.Config):
    """A whole experiment: task, trainer and runtime."""

    experiment: str = ""
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


def _keys(config: params_dict.ParamsDict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in config.as_dict().items():
        keys.append(prefix + name)
        sub = getattr(config, name)
        if isinstance(sub, params_dict.ParamsDict):
            keys.extend(_keys(sub, prefix + name + "."))
    return keys


def apply_overrides(config: ExperimentConfig, config_files: list[str], params_override: str | dict,
                    source: str | None = None) -> ExperimentConfig:
    """Applies YAML files (in order, later wins) then ``params_override`` to ``config``.

    Each source's Model Garden keys are translated to ours first (see
    :mod:`llm_tf.training.model_garden_keys`); the ones with no equivalent here are dropped
    and listed in one absl warning.

    Args:
        config: The experiment's defaults (modified in place and returned).
        config_files: YAML files.
        params_override: Dotted ``key=value`` pairs, comma separated, a YAML/JSON string, or a
            nested dict.
        source: What to call ``params_override`` in errors (default ``--params_override`` for
            a string, ``flags`` for a dict).

    Raises:
        ConfigError: A missing or unreadable file, an unknown key (the valid keys that look
            closest are listed), a Model Garden value with no equivalent here, or one source
            giving a key and its Model Garden alias different values.
    """
    ignored: list[tuple[str, list[str]]] = []
    for path in config_files:
        if not io_utils.isfile(path):
            raise ConfigError(f"{path}: no such config file")
        try:
            values = yaml.safe_load(io_utils.read_text(path)) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else path
            raise ConfigError(f"{where}: bad YAML: {getattr(e, 'problem', e)}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
        _override(config, _translate(config, values, path, ignored), path)
    if params_override:
        name = source or ("--params_override" if isinstance(params_override, str) else "flags")
        values = params_override
        if isinstance(values, str):
            values = model_garden_keys.parse_override(values)
        _override(config, _translate(config, values, name, ignored) if isinstance(values, dict) else values, name)
    note = model_garden_keys.note(ignored)
    if note:
        logging.warning(note)
    try:
        config.validate()
    except (KeyError, ValueError) as e:
        raise ConfigError(f"invalid config: {e}") from None
    return config


def _translate(config: ExperimentConfig, values: dict, source: str, ignored: list) -> dict:
    """``values`` with Model Garden keys as ours; the ignored ones are added to ``ignored``."""
    translated, dropped = model_garden_keys.translate(values, config, source)
    if dropped:
        ignored.append((source, dropped))
    return translated


def _override(config: ExperimentConfig, values, source: str) -> None:
    try:
        params_dict.override_params_dict(config, values, is_strict=True)
    except KeyError as e:
        key = str(e).strip("'\"")
        bad = key.split("'")[1] if "'" in key else key
        valid = _keys(config)
        by_leaf: dict[str, list[str]] = {}
        for full in (*valid, *model_garden_keys.ALIASES):  # Model Garden's names are accepted too
            by_leaf.setdefault(full.rsplit(".", 1)[-1], []).append(full)
        close = [full for leaf in difflib.get_close_matches(bad, list(by_leaf), n=5, cutoff=0.6)
                 for full in by_leaf[leaf]]
        close = close or [k for k in valid if "." not in k]
        raise ConfigError(f"{source}: unknown config key '{bad}' (did you mean: {', '.join(close)})") from None
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{source}: cannot apply override: {e}") from None
