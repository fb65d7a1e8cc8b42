"""Hugging Face ``transformers`` BERT directories: checked and read; keras-hub converts the weights.

A BERT directory as ``save_pretrained`` writes it (model and tokenizer)::

    config.json                  "model_type": "bert", dimensions, activation, segment count
    model.safetensors            the weights (or model.safetensors.index.json + its shards)
    vocab.txt                    the WordPiece vocabulary, one token a line
    tokenizer_config.json        do_lower_case, strip_accents, special tokens

This module only reads the two JSON files and checks that the directory is one our BERT
encoder can start from; the weights are converted by keras-hub's own transformers loader
(``BertBackbone.from_preset(directory)``), see :func:`llm_tf.models.presets.backbone_weights`.

Example:
    >>> settings = read_directory("checkpoints/all-MiniLM-L6-v2", config, "task.init_preset")
    >>> settings.backbone_config["num_layers"], settings.lower_case
    (6, True)
"""

import dataclasses
import os

from llm_tf.errors import ConfigError

# File names as ``transformers``' save_pretrained writes them.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHARDED_WEIGHTS_FILE = "model.safetensors.index.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: Weight files keras-hub cannot read (it reads safetensors only).
UNREADABLE_WEIGHTS_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
#: Every file name that marks a directory as a Hugging Face one (for telling formats apart).
MARKER_FILES = (WEIGHTS_FILE, SHARDED_WEIGHTS_FILE, VOCAB_FILE, TOKENIZER_CONFIG_FILE) + UNREADABLE_WEIGHTS_FILES

#: ``model_type`` values our encoder experiments start from (keras-hub's ``convert_bert``).
SUPPORTED_MODEL_TYPES = ("bert",)
#: keras-hub ``BertBackbone`` argument <- Hugging Face config key.
DIMENSION_KEYS = {
    "num_layers": "num_hidden_layers",
    "hidden_dim": "hidden_size",
    "num_heads": "num_attention_heads",
    "intermediate_dim": "intermediate_size",
    "max_sequence_length": "max_position_embeddings",
    "vocabulary_size": "vocab_size",
}
#: Config values keras-hub's ``BertBackbone`` has built in: key -> (accepted values, default when absent).
#: keras-hub computes GELU with the tanh approximation whatever the checkpoint names (``gelu``
#: is the exact form in transformers), so every GELU is accepted; other activations are not.
FIXED_ARCHITECTURE = {
    "hidden_act": (("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast"), "gelu"),
    "type_vocab_size": ((2,), 2),
    "position_embedding_type": (("absolute",), "absolute"),
    "layer_norm_eps": ((1e-12,), 1e-12),
}
#: Tokenizer classes whose algorithm is BERT's basic split + WordPiece.
TOKENIZER_CLASSES = ("BertTokenizer", "BertTokenizerFast")
#: tokenizer_config.json key -> the special token our tokenizer looks up in the vocabulary.
SPECIAL_TOKEN_KEYS = {
    "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
}
#: What to run when a directory holds PyTorch weights only.
SAFETENSORS_REMEDY = ("convert them once where transformers is installed: python -c \"from transformers import "
                      "AutoModel; AutoModel.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"")


@dataclasses.dataclass(frozen=True)
class DirectorySettings:
    """What a checked Hugging Face BERT directory gives the encoder and the tokenizer.

    Attributes:
        backbone_config: keras-hub ``BertBackbone`` dimensions (``num_layers``, ...,
            ``vocabulary_size``) converted from ``config.json``.
        lower_case: ``do_lower_case`` (accents are stripped exactly when it is true).
        vocab_file: Absolute path of ``vocab.txt``.
        tokenizer_config_file: Absolute path of ``tokenizer_config.json``.
    """

    backbone_config: dict
    lower_case: bool
    vocab_file: str
    tokenizer_config_file: str


def is_transformers_config(config: dict) -> bool:
    """Whether a parsed ``config.json`` is a Hugging Face model config (not a keras-hub one)."""
    return "model_type" in config and not (config.get("class_name") or config.get("registered_name"))


def read_directory(directory: str, config: dict, field: str, read_json) -> DirectorySettings:
    """Checks a Hugging Face BERT directory whose ``config.json`` is ``config`` and reads its tokenizer settings.

    Args:
        directory: The directory (absolute).
        config: Its parsed ``config.json``.
        field: The flag or config key that named it (starts every error message).
        read_json: ``(path, field) -> dict``, the caller's JSON reader (its errors name the file).

    Returns:
        The :class:`DirectorySettings`.

    Raises:
        ConfigError: An unsupported ``model_type`` or architecture setting, no safetensors
            weights (PyTorch-only directories included), no ``vocab.txt`` or
            ``tokenizer_config.json``, a tokenizer that is not BERT's WordPiece, or lower-casing
            and accent stripping that differ (each message names the file and what to do).
    """
    config_path = os.path.join(directory, CONFIG_FILE)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(f"{field}: {config_path}: model_type '{model_type}' is not supported; the encoder "
                          f"experiments start from BERT checkpoints (model_type {', '.join(SUPPORTED_MODEL_TYPES)})")
    _check_weights(directory, field)
    backbone_config = {}
    for ours, theirs in DIMENSION_KEYS.items():
        value = config.get(theirs)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{field}: {config_path}: {theirs} must be a positive integer, got {value!r}")
        backbone_config[ours] = value
    for key, (accepted, default) in FIXED_ARCHITECTURE.items():
        value = config.get(key, default)
        if value not in accepted:
            raise ConfigError(f"{field}: {config_path}: {key}={value!r} is not supported (keras-hub's BertBackbone "
                              f"has {key} {' or '.join(map(str, accepted))})")
    vocab_file = os.path.join(directory, VOCAB_FILE)
    if not os.path.isfile(vocab_file):
        raise ConfigError(f"{field}: {directory}: no {VOCAB_FILE} (the WordPiece vocabulary); save the checkpoint's "
                          "tokenizer into the same directory (tokenizer.save_pretrained(DIR))")
    tokenizer_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if not os.path.isfile(tokenizer_path):
        raise ConfigError(f"{field}: {directory}: no {TOKENIZER_CONFIG_FILE} (it says whether the model is uncased); "
                          "save the tokenizer with tokenizer.save_pretrained(DIR), or write "
                          "{\"do_lower_case\": true} for an uncased model, false for a cased one")
    lower_case = _tokenizer_settings(read_json(tokenizer_path, field), tokenizer_path, field)
    return DirectorySettings(backbone_config, lower_case, vocab_file, tokenizer_path)


def _check_weights(directory: str, field: str) -> None:
    if any(os.path.isfile(os.path.join(directory, name)) for name in (WEIGHTS_FILE, SHARDED_WEIGHTS_FILE)):
        return
    others = [name for name in UNREADABLE_WEIGHTS_FILES if os.path.isfile(os.path.join(directory, name))]
    if others:
        raise ConfigError(f"{field}: {directory}: only {others[0]}; keras-hub reads {WEIGHTS_FILE}: "
                          + SAFETENSORS_REMEDY.replace("DIR", directory))
    raise ConfigError(f"{field}: {directory}: no {WEIGHTS_FILE} (nor {SHARDED_WEIGHTS_FILE}); save the model with "
                      "model.save_pretrained(DIR, safe_serialization=True)")


def _token(value) -> str | None:
    # transformers writes special tokens as strings, or as AddedToken dicts ({"content": ...}).
    return value.get("content") if isinstance(value, dict) else value


def _tokenizer_settings(settings: dict, path: str, field: str) -> bool:
    name = settings.get("tokenizer_class")
    if name is not None and name not in TOKENIZER_CLASSES:
        raise ConfigError(f"{field}: {path}: tokenizer_class '{name}' is not supported (BERT WordPiece: "
                          f"{', '.join(TOKENIZER_CLASSES)})")
    for key, ours in SPECIAL_TOKEN_KEYS.items():
        token = _token(settings.get(key))
        if token is not None and token != ours:
            raise ConfigError(f"{field}: {path}: {key} is '{token}'; the BERT tokenizer here uses {ours}")
    lower_case = settings.get("do_lower_case", True)  # transformers' BertTokenizer default
    strip_accents = settings.get("strip_accents")
    if not isinstance(lower_case, bool) or strip_accents not in (None, True, False):
        raise ConfigError(f"{field}: {path}: do_lower_case must be true or false and strip_accents true, false or "
                          f"null, got {lower_case!r} and {strip_accents!r}")
    if strip_accents is not None and strip_accents != lower_case:
        raise ConfigError(f"{field}: {path}: strip_accents={str(strip_accents).lower()} with do_lower_case="
                          f"{str(lower_case).lower()} is not supported (the in-graph tokenizer strips accents exactly "
                          "when it lower-cases, as BERT's uncased models do)")
    if settings.get("tokenize_chinese_chars", True) is not True or settings.get("do_basic_tokenize", True) is not True:
        raise ConfigError(f"{field}: {path}: tokenize_chinese_chars and do_basic_tokenize must be true (BERT's "
                          "basic tokenizer runs before WordPiece in the in-graph tokenizer)")
    return lower_case
