"""A fine-tuned encoder back out as a keras-hub preset directory ("round trip out").

``llm_export --keras_hub_preset=DIR`` (or :func:`save_keras_hub_preset`) writes the BERT encoder
of a training run and its WordPiece tokenizer with keras-hub's own ``save_to_preset``, so that
keras-hub users load what llm-tf trained::

    backbone = keras_hub.models.BertBackbone.from_preset(DIR)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(DIR)

and llm-tf starts a new run from it (``task.init_preset=DIR``, see :mod:`llm_tf.models.presets`).

The backbone is a fresh float32 ``BertBackbone`` built from the encoder's config with the trained
weights copied in: LoRA factors are already merged by :func:`llm_tf.training.model_dir.restore_trained_model`
and no mixed-precision policy is saved. The task head (classifier, tagger, MLM head) is not part
of a backbone preset. The directory is written beside its final path and renamed into place at
the end, so nobody sees half a preset. On a bucket (``gs://...``) keras-hub saves to a local
temporary directory first (it writes local files only), which is then copied into place.
"""

import dataclasses
import os
import tempfile

from llm_tf import io_utils
from llm_tf.data.prepared import TOKENIZER_DIR
from llm_tf.errors import ConfigError
from llm_tf.io_utils import atomic_directory
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.text import tokenizer as tokenizer_lib
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training import registry_imports  # noqa: F401  (rebuilds any registered experiment's model)


@dataclasses.dataclass
class PresetResult:
    """What :func:`save_keras_hub_preset` wrote.

    Attributes:
        path: The preset directory (absolute).
        step: Training step of the checkpoint saved.
        checkpoint: The checkpoint path restored.
        num_parameters: Parameters of the backbone.
        lower_case: The tokenizer lower-cases and strips accents.
    """

    path: str
    step: int
    checkpoint: str
    num_parameters: int
    lower_case: bool


def _check_output_dir(output_dir: str, overwrite: bool, protected: dict[str, str]) -> str:
    remote = io_utils.is_remote(output_dir)
    path, sep = (output_dir.rstrip("/"), "/") if remote else (os.path.abspath(output_dir), os.sep)
    if io_utils.exists(path) and not io_utils.isdir(path):
        raise ConfigError(f"{path}: exists and is not a directory")
    for what, directory in protected.items():
        if directory and io_utils.is_remote(directory) == remote:
            inside = io_utils.abspath(directory)
            if inside == path or inside.startswith(path.rstrip(sep) + sep):
                raise ConfigError(f"{path}: the preset directory would replace the {what} {inside}")
    if io_utils.isdir(path) and io_utils.listdir(path) and not overwrite:
        raise ConfigError(f"{path}: output directory exists and is not empty (pass --overwrite to replace it)")
    return path


def _wordpiece_settings(prepared_dir: str) -> tuple[list[str], bool]:
    """The prepared data's vocabulary and lower-casing; a SentencePiece tokenizer is an error."""
    directory = os.path.join(prepared_dir, TOKENIZER_DIR)
    settings = tokenizer_lib.TokenizerConfig.load(directory)
    vocab_path = os.path.join(directory, settings.vocab_file)
    if settings.kind != "wordpiece":
        raise ConfigError(f"{vocab_path}: a {settings.kind} tokenizer; a keras-hub BERT preset needs a WordPiece "
                          "vocabulary (BertTokenizer)")
    return tokenizer_lib.load_vocab(vocab_path), settings.lower_case


def save_keras_hub_preset(model_dir: str, output_dir: str, checkpoint: str = "best", prepared_dir: str | None = None,
                          overwrite: bool = False) -> PresetResult:
    """Saves the BERT encoder of a training run and its tokenizer as a keras-hub preset.

    Args:
        model_dir: The training directory (``params.yaml`` + checkpoints).
        output_dir: The preset directory to write (local or a bucket: saved locally, then copied).
        checkpoint: ``best``, ``latest`` or a checkpoint prefix.
        prepared_dir: Where the prepared data (tokenizer) is, if it moved since training.
        overwrite: Replace an existing non-empty ``output_dir``.

    Returns:
        The :class:`PresetResult`.

    Raises:
        ConfigError: ``output_dir`` exists (without ``overwrite``) or would replace
            the run or its data; the experiment's encoder is not a ``BertBackbone`` (e.g.
            ``causal_lm``'s GPT-2 decoder); the tokenizer is SentencePiece; the checkpoint does
            not fit the config.
        DataError: Not a training directory, no checkpoint, missing prepared data.

    Example:
        >>> result = save_keras_hub_preset("runs/sst2_tiny", "presets/sst2_bert")
        >>> keras_hub.models.BertBackbone.from_preset(result.path)
    """
    config = model_dir_lib.load_config(model_dir, prepared_dir)
    data_dir = config.task.data.prepared_dir
    path = _check_output_dir(output_dir, overwrite, {"training directory": model_dir, "prepared data": data_dir})
    # Refuse SentencePiece data before the (slow) restore; a missing prepared directory is named by the restore.
    early = bool(data_dir) and io_utils.isfile(os.path.join(data_dir, TOKENIZER_DIR, tokenizer_lib.CONFIG_FILE))
    if early:
        vocab, lower_case = _wordpiece_settings(data_dir)
    trained = model_dir_lib.restore_trained_model(model_dir, checkpoint, prepared_dir)
    if not early:
        vocab, lower_case = _wordpiece_settings(data_dir)

    import keras_hub

    encoder = trained.model.get_layer(ENCODER_NAME)
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ConfigError(f"{model_dir}: experiment '{trained.config.experiment}' has a {type(encoder).__name__} "
                          "encoder; only BERT encoders (sentence_classification, token_classification, mlm_pretrain, "
                          "distillation) are saved as keras-hub presets")
    if len(vocab) != encoder.vocabulary_size:
        raise ConfigError(f"{data_dir}: the vocabulary has {len(vocab)} tokens but the encoder in {model_dir} has "
                          f"{encoder.vocabulary_size} (wrong --prepared_dir?)")
    backbone_config = {**encoder.get_config(), "dtype": "float32"}
    backbone = keras_hub.models.BertBackbone.from_config(backbone_config)
    _copy_weights(encoder, backbone, trained.checkpoint)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=lower_case, strip_accents=lower_case)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        if io_utils.is_remote(tmp):  # keras-hub writes local files only: save locally, then copy up
            with tempfile.TemporaryDirectory(prefix="llm_tf_preset_") as local:
                backbone.save_to_preset(local)
                tokenizer.save_to_preset(local)
                with io_utils.storage_errors(path):
                    io_utils.copy_tree(local, tmp)
        else:
            backbone.save_to_preset(tmp)
            tokenizer.save_to_preset(tmp)
    return PresetResult(path, trained.step, trained.checkpoint, int(backbone.count_params()), lower_case)


def _copy_weights(source, target, checkpoint: str) -> None:
    """Assigns every weight of ``source`` to ``target`` (same class and config), checking paths and shapes."""
    pairs = list(zip(source.weights, target.weights))
    for src, dst in pairs:
        if _relative(src.path, source.name) != _relative(dst.path, target.name) or tuple(src.shape) != tuple(dst.shape):
            raise ConfigError(f"{checkpoint}: cannot copy the encoder into a fresh BertBackbone: {src.path} "
                              f"{tuple(src.shape)} vs {dst.path} {tuple(dst.shape)}")
    if len(source.weights) != len(target.weights):
        raise ConfigError(f"{checkpoint}: cannot copy the encoder into a fresh BertBackbone: {len(source.weights)} "
                          f"weights vs {len(target.weights)}")
    for src, dst in pairs:
        dst.assign(src.numpy())


def _relative(variable_path: str, prefix: str) -> str:
    prefix += "/"
    return variable_path[len(prefix):] if variable_path.startswith(prefix) else variable_path
