"""Starting an encoder experiment from a pre-trained BERT checkpoint (``task.init_preset``).

``task.init_preset`` names a local keras-hub preset directory, a Hugging Face BERT directory
or a named offline preset (``all_minilm_l6_v2``); see :mod:`llm_tf.models.presets`.

The preset decides the architecture: :func:`resolve` copies its dimensions into ``task.model``
(so ``params.yaml`` describes the model that was trained and export rebuilds it without the
preset; ``task.model.size`` is then ignored) and checks that the prepared data was tokenized
with the preset's vocabulary and lower-casing and fits its ``max_sequence_length``. A fresh
run then loads the preset's weights into its encoder (:func:`load_weights`); a resumed run
takes them from its own checkpoint, and ``task.init_checkpoint``, when also set, wins.
``task.model.dropout`` still applies: the encoder is ours, only the weights are the preset's.
"""

import os

import keras
import numpy as np

from llm_tf.data.prepared import TOKENIZER_DIR
from llm_tf.errors import ConfigError, DataError
from llm_tf.models import presets
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.text import tokenizer as tokenizer_lib

FIELD = "task.init_preset"
#: ``task.model`` fields the preset sets; a non-zero value in the config must agree.
_CHECKED = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim")


def resolve(config) -> presets.LocalPreset:
    """Checks ``task.init_preset`` against the config and data; writes its dimensions into ``task.model``.

    Idempotent: a config resolved once resolves again to the same values.

    Args:
        config: The experiment config (``task.model`` is modified in place).

    Returns:
        The checked preset.

    Raises:
        ConfigError: Not a complete local BERT preset; a ``task.model`` dimension that
            disagrees with it; ``task.data.seq_length`` above its ``max_sequence_length``; data
            tokenized with another vocabulary or lower-casing (both files are named).
        DataError: No prepared data, or a vocabulary file that is not a usable WordPiece one.
    """
    task = config.task
    preset = presets.open_preset(task.init_preset, FIELD)
    dims = preset.dimensions
    config_json = preset.config_file
    for key in _CHECKED:
        given = getattr(task.model, key)
        if given and given != dims[key]:
            raise ConfigError(f"task.model.{key}={given} disagrees with {key}={dims[key]} of {config_json}; "
                              "leave it 0: with task.init_preset the preset sets the architecture")
    if task.data.seq_length > dims["max_sequence_length"]:
        raise ConfigError(f"task.data.seq_length={task.data.seq_length} exceeds max_sequence_length="
                          f"{dims['max_sequence_length']} of {config_json}")
    _check_vocabulary(preset, task.data.prepared_dir)
    config.override({"task": {"model": dims}}, is_strict=True)
    return preset


def _check_vocabulary(preset: presets.LocalPreset, prepared_dir: str) -> None:
    theirs = tokenizer_lib.load_vocab(preset.vocab_file)
    size = preset.backbone_config["vocabulary_size"]
    if len(theirs) != size:
        raise ConfigError(f"{FIELD}: {preset.vocab_file} has {len(theirs)} tokens but vocabulary_size is {size} in "
                          f"{preset.config_file}")
    if not prepared_dir:
        raise DataError("no prepared data: set task.data.prepared_dir (prepare it with llm_prepare --preset=DIR)")
    directory = os.path.join(prepared_dir, TOKENIZER_DIR)
    settings = tokenizer_lib.TokenizerConfig.load(directory)
    remedy = f"prepare the data with llm_prepare --preset={preset.name or preset.directory}"
    ours_path = os.path.join(directory, settings.vocab_file)
    if settings.kind != "wordpiece":
        raise ConfigError(f"{FIELD}: vocabulary mismatch: {ours_path} is a {settings.kind} model, {preset.vocab_file} "
                          f"a WordPiece vocabulary; {remedy}")
    ours = tokenizer_lib.load_vocab(ours_path)
    if ours != theirs:
        raise ConfigError(f"{FIELD}: vocabulary mismatch: {ours_path} ({len(ours)} tokens, sha256 "
                          f"{presets.vocab_fingerprint(ours)}) differs from {preset.vocab_file} ({len(theirs)} tokens, "
                          f"sha256 {presets.vocab_fingerprint(theirs)}); {remedy}")
    if settings.lower_case != preset.lower_case:
        raise ConfigError(f"{FIELD}: lower-casing mismatch: lower_case={str(settings.lower_case).lower()} in "
                          f"{os.path.join(directory, tokenizer_lib.CONFIG_FILE)}, {presets.lower_case_key(preset)}="
                          f"{str(preset.lower_case).lower()} in {preset.tokenizer_config_file}; {remedy}")


def preset_weights(config, resuming: bool) -> tuple[presets.LocalPreset | None, dict[str, np.ndarray] | None]:
    """Resolves ``task.init_preset`` and, for a fresh run without ``init_checkpoint``, loads its weights.

    Call it before entering the strategy's scope (the preset's backbone is only read).

    Args:
        config: The experiment config (resolved in place, see :func:`resolve`).
        resuming: The run restores its own checkpoint (the preset's weights are not needed).

    Returns:
        (preset, weights by variable path); (None, None) without ``task.init_preset``, and
        weights None when they are not needed.
    """
    if not config.task.init_preset:
        return None, None
    preset = resolve(config)
    if resuming or config.task.init_checkpoint:
        return preset, None
    return preset, presets.backbone_weights(preset)


def load_weights(model: keras.Model, weights: dict[str, np.ndarray], preset: presets.LocalPreset) -> str:
    """Puts a preset's backbone weights into the encoder of a task model.

    Args:
        model: A task model whose ``encoder`` layer is a keras-hub ``BertBackbone``.
        weights: From :func:`preset_weights`.
        preset: Their preset.

    Returns:
        The preset directory.

    Raises:
        ConfigError: The experiment's encoder is not a ``BertBackbone`` (e.g. ``causal_lm``'s
            GPT-2 decoder), or its variables do not fit the preset's.
    """
    import keras_hub

    encoder = model.get_layer(ENCODER_NAME)
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ConfigError(f"{FIELD}: this experiment's encoder is a {type(encoder).__name__}; only the BERT encoder "
                          "experiments (sentence_classification, token_classification, mlm_pretrain) "
                          "start from a preset")
    presets.assign_weights(encoder, weights, preset.directory)
    return preset.directory
