"""An ``llm_export`` version directory and its model base path: the layout, listing, reading.

A model base path holds integer version directories (TF Serving's layout); each version is a
SavedModel with::

    saved_model.pb, variables/        the model, raw-text signatures (``llm_tf.export.signatures``)
    assets/                           the tokenizer's vocabulary (vocab.txt or a SentencePiece .model)
    assets.extra/llm_tf_export.json   where it came from: experiment, model_dir, checkpoint, step,
                                      prepared_dir, seq_length, labels, signatures, weights, config
    assets.extra/labels.txt           label names in id order
    assets.extra/tf_serving_warmup_requests   warm-up requests (``llm_tf.export.warmup``)
    model.tflite                      only with ``llm_export --tflite_model``: the token form as TFLite,
                                      served with ``--prefer_tflite_model`` (``llm_tf.export.serving_tflite``)

:mod:`llm_tf.export.exporter` writes it through :func:`write_labels` and
:func:`write_export_info`; quantization, evaluation, distillation teachers and the pipeline read
it through this module. A model base path may be a bucket (``gs://...``): every listing and read
here goes through ``tf.io.gfile`` (:mod:`llm_tf.io_utils`).
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data.labels import load_labels as read_label_file
from llm_tf.data.labels import save_labels
from llm_tf.data.prepared import TOKENIZER_DIR
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_json
from llm_tf.text.tokenizer import TextTokenizer, TokenizerConfig

SAVED_MODEL_FILE = "saved_model.pb"
ASSETS_DIR = "assets"
ASSETS_EXTRA_DIR = "assets.extra"
#: Export metadata beside the warm-up file: where the model came from (lineage).
EXPORT_INFO_FILE = os.path.join(ASSETS_EXTRA_DIR, "llm_tf_export.json")
#: Label vocabulary in id order, for apps and tools that read the SavedModel directory.
LABELS_FILE = os.path.join(ASSETS_EXTRA_DIR, "labels.txt")
#: TF Serving's warm-up requests, replayed when a version loads (written by ``llm_tf.export.warmup``).
WARMUP_FILE = os.path.join(ASSETS_EXTRA_DIR, "tf_serving_warmup_requests")
#: The TFLite model TF Serving loads instead of saved_model.pb with ``--prefer_tflite_model``.
MODEL_TFLITE_FILE = "model.tflite"
#: Texts used to check the rebuilt tokenizer against the SavedModel.
CHECK_TEXTS = ("a gripping , funny film", "the worst movie of the year !",
               "Ça n'a rien à voir : 1999's über-long, un-FUNNY mess...", "")


def existing_versions(model_base_path: str) -> list[int]:
    """Integer version directories under a model base path, sorted (TF Serving's view).

    Raises:
        DataError: An unreachable bucket (no network, no credentials, no such bucket).
    """
    # exists() raises on an unreachable bucket, where gfile's isdir() would answer False.
    if not io_utils.exists(model_base_path) or not io_utils.isdir(model_base_path):
        return []
    return sorted(int(name) for name in io_utils.listdir(model_base_path)
                  if name.isdigit() and io_utils.isdir(os.path.join(model_base_path, name)))


def next_version(model_base_path: str) -> int:
    """One more than the highest existing version, or 1."""
    versions = existing_versions(model_base_path)
    return versions[-1] + 1 if versions else 1


def version_path(model_base_path: str, version: int) -> str:
    """``<model_base_path>/<version>``."""
    return os.path.join(model_base_path, str(version))


def write_labels(version_dir: str, labels: list[str]) -> None:
    """Writes ``assets.extra/labels.txt`` (one label per line, in id order) atomically."""
    io_utils.makedirs(os.path.join(version_dir, ASSETS_EXTRA_DIR))
    save_labels(os.path.join(version_dir, LABELS_FILE), labels)


def write_export_info(version_dir: str, info: dict) -> None:
    """Writes ``assets.extra/llm_tf_export.json`` atomically."""
    io_utils.makedirs(os.path.join(version_dir, ASSETS_EXTRA_DIR))
    atomic_write_json(os.path.join(version_dir, EXPORT_INFO_FILE), info)


def load_export_info(version_dir: str) -> dict:
    """Reads the export metadata of a version directory written by ``llm_export``.

    Raises:
        DataError: Not exported by ``llm_export`` (no ``assets.extra/llm_tf_export.json``).
    """
    path = os.path.join(version_dir, EXPORT_INFO_FILE)
    if not io_utils.isfile(path):
        raise DataError(f"{version_dir}: not exported by llm_export (no {EXPORT_INFO_FILE})")
    return json.loads(io_utils.read_text(path))


def load_labels(version_dir: str) -> list[str]:
    """The label names of an exported version, in id order.

    Raises:
        DataError: No ``assets.extra/labels.txt`` there.
    """
    path = os.path.join(version_dir, LABELS_FILE)
    if not io_utils.isfile(path):
        raise DataError(f"{version_dir}: no {LABELS_FILE} (export it with llm_export)")
    return list(read_label_file(path))


def vocabulary_files(version_dir: str) -> list[str]:
    """The file names in the version's ``assets/`` (its tokenizer's vocabulary), sorted."""
    assets = os.path.join(version_dir, ASSETS_DIR)
    return io_utils.listdir(assets) if io_utils.isdir(assets) else []


@dataclasses.dataclass
class ExportedModel:
    """An ``llm_export`` version directory, loaded for conversion.

    Attributes:
        path: The version directory.
        info: Its ``llm_tf_export.json``.
        labels: Label names in id order.
        seq_length: Packed length the TFLite models take.
        vocab_path: The vocabulary asset inside the SavedModel.
        tokenizer: The in-graph tokenizer rebuilt over ``vocab_path`` (tokenizes only: no detokenization data).
        loaded: The loaded SavedModel.
    """

    path: str
    info: dict
    labels: list[str]
    seq_length: int
    vocab_path: str
    tokenizer: object
    loaded: object
    #: Concrete functions traced for TFLite conversion, by (form, batch size, additive masks).
    traced_functions: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def prepared_dir(self) -> str | None:
        """The prepared data set the model was trained on (may have moved)."""
        return self.info.get("prepared_dir")

    def predict_tokens(self, token_ids, segment_ids, padding_mask) -> dict:
        """Runs the SavedModel's ``predict_tokens`` signature.

        Args:
            token_ids: int32 [batch, length].
            segment_ids: int32 [batch, length].
            padding_mask: int32 [batch, length].

        Returns:
            Dict of ``logits``, ``scores``, ``label_ids`` tensors.
        """
        return self.loaded.signatures["predict_tokens"](token_ids=token_ids, segment_ids=segment_ids,
                                                        padding_mask=padding_mask)

    def predict_tokens_additive_masks(self, token_ids, segment_ids, padding_mask) -> dict:
        """``predict_tokens`` traced with additive attention masks (:mod:`llm_tf.export.softmax_masks`).

        Same outputs, no ``SELECT_V2`` around the attention softmax, so XNNPACK runs the TFLite
        encoder in one piece. Exports written before it existed fall back to ``predict_tokens``.
        """
        function = getattr(self.loaded, "predict_tokens_additive_masks", None)
        if function is None:
            return self.predict_tokens(token_ids, segment_ids, padding_mask)
        return function(token_ids, segment_ids, padding_mask)

    def serve(self, texts: list[str]) -> dict:
        """Runs the SavedModel's ``serving_default`` on raw strings.

        Args:
            texts: The texts.

        Returns:
            Dict of numpy ``scores``, ``label_ids``, ``labels``.
        """
        out = self.loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))
        return {k: v.numpy() for k, v in out.items()}

    def tokenize(self, texts: list[str]) -> dict:
        """Packs texts with the rebuilt tokenizer.

        Args:
            texts: The texts.

        Returns:
            Dict of numpy int32 [batch, seq_length] ``token_ids``, ``segment_ids``, ``padding_mask``.
        """
        packed = self.tokenizer(tf.constant(texts, tf.string), seq_length=self.seq_length)
        return {k: tf.cast(v, tf.int32).numpy() for k, v in packed.items()}


def _tokenizer_config(path: str, info: dict, prepared_dir: str | None):
    directory = os.path.join(prepared_dir or info.get("prepared_dir") or "", TOKENIZER_DIR)
    try:
        if io_utils.isfile(os.path.join(directory, "tokenizer_config.json")):
            return TokenizerConfig.load(directory)
    except DataError:  # the prepared data's bucket is out of reach: guess from the assets, as when it moved
        pass
    assets = os.path.join(path, ASSETS_DIR)
    if io_utils.isfile(os.path.join(assets, "vocab.txt")):
        # The prepared data moved: WordPiece with llm_prepare's default lower-casing. The check
        # against serving_default below catches a wrong guess.
        return TokenizerConfig(kind="wordpiece", vocab_file="vocab.txt", lower_case=True)
    models = [n for n in vocabulary_files(path) if n.endswith(".model")]
    if models:
        return TokenizerConfig(kind="sentencepiece", vocab_file=models[0])
    raise DataError(f"{path}: no vocabulary asset in assets/ (not an llm_export SavedModel?)")


def load_exported(path: str, prepared_dir: str | None = None) -> ExportedModel:
    """Loads an ``llm_export`` version directory and rebuilds its tokenizer.

    Args:
        path: The version directory (``<model_base_path>/<version>``).
        prepared_dir: The prepared data directory, if it moved since export (for the
            tokenizer's settings and the representative/eval splits).

    Returns:
        An :class:`ExportedModel`.

    Raises:
        DataError: Not a SavedModel / not exported by ``llm_export``.
        ConfigError: The SavedModel lacks the expected signatures, or is not a single-text
            sentence classifier, or the rebuilt tokenizer does not reproduce it.
    """
    if not io_utils.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        raise DataError(f"{path}: not a SavedModel version directory (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    expected = {"serving_default": {"text"}, "predict_tokens": {"token_ids", "segment_ids", "padding_mask"}}
    for name, inputs in expected.items():
        if name not in loaded.signatures:
            raise ConfigError(f"{path}: SavedModel has no '{name}' signature (has: "
                              f"{', '.join(sorted(loaded.signatures)) or 'none'}); export it with llm_export")
        have = set(loaded.signatures[name].structured_input_signature[1])
        if have != inputs:
            raise ConfigError(f"{path}: signature '{name}' takes {', '.join(sorted(have))}; llm_quantize supports "
                              f"single-text classifiers ({', '.join(sorted(inputs))})")
    outputs = set(loaded.signatures["predict_tokens"].structured_outputs)
    if not {"logits", "scores", "label_ids"} <= outputs:
        raise ConfigError(f"{path}: 'predict_tokens' returns {', '.join(sorted(outputs))}; "
                          "expected logits, scores, label_ids")
    info = load_export_info(path)
    if info.get("experiment") not in ("sentence_classification", "distillation"):
        raise ConfigError(f"{path}: experiment '{info.get('experiment')}' is not supported by llm_quantize "
                          "(sentence classifiers only: sentence_classification, distillation)")
    if prepared_dir:
        info = dict(info, prepared_dir=io_utils.abspath(prepared_dir))
    config = _tokenizer_config(path, info, prepared_dir)
    vocab_path = os.path.join(path, ASSETS_DIR, config.vocab_file)
    seq_length = int(info["seq_length"])
    # Conversion only tokenizes: without detokenization data, WordPiece does not store the vocabulary a
    # second time inside its model (137 KB more per text-form file for a 7,587-token vocabulary).
    tokenizer = TextTokenizer(vocab_path, config.kind, config.lower_case, seq_length, detokenize=False)
    exported = ExportedModel(path, info, list(info["labels"]), seq_length, vocab_path, tokenizer, loaded)
    check_tokenizer(exported)
    return exported


def check_tokenizer(exported: ExportedModel, texts: tuple[str, ...] = CHECK_TEXTS, atol: float = 1e-4) -> None:
    """Checks that the rebuilt tokenizer + ``predict_tokens`` reproduce ``serving_default``.

    Args:
        exported: The loaded export.
        texts: Texts to compare on.
        atol: Largest allowed score difference.

    Raises:
        ConfigError: Scores differ by more than ``atol`` (the tokenizer settings do not match).
    """
    served = exported.serve(list(texts))["scores"]
    ours = exported.predict_tokens(**{k: tf.constant(v) for k, v in exported.tokenize(list(texts)).items()})["scores"]
    diff = float(np.max(np.abs(served - ours.numpy())))
    if diff > atol:
        raise ConfigError(f"{exported.path}: the tokenizer rebuilt from assets/ does not reproduce serving_default "
                          f"(max score difference {diff:.3g}); pass --prepared_dir with the training tokenizer")
