"""The in-graph tokenizer: raw strings (single or pairs) to BERT inputs, inside TensorFlow.

Built on tensorflow-text's ``FastBertTokenizer`` (WordPiece) or ``FastSentencepieceTokenizer``,
both of which have TFLite kernels (``tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS``).
Packing uses dense ops only (see :mod:`llm_tf.text.packing`), so the same tokenizer runs in
tf.data, inside an exported SavedModel and in a TFLite model. The vocabulary file is tracked
as a SavedModel asset, so it travels with every model that holds the tokenizer.

The tokenizer directory may be local or ``gs://`` (any ``scheme://`` TensorFlow opens): the
files are read through ``tf.io.gfile`` into memory (tensorflow-text takes the vocabulary as a
list and the SentencePiece model as bytes, so no local copy is made).

Example:
    >>> tokenizer = TextTokenizer.from_directory("prepared/tokenizer")
    >>> inputs = tokenizer(tf.constant(["a fine film"]))
    >>> sorted(inputs)
    ['padding_mask', 'segment_ids', 'token_ids']
"""

import dataclasses
import io
import json
import os

import tensorflow as tf
import tensorflow_text as tft

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_json
from llm_tf.text import packing

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
#: Reserved tokens at the start of every vocabulary we train, in id order.
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
KINDS = ("wordpiece", "sentencepiece")
CONFIG_FILE = "tokenizer_config.json"


@dataclasses.dataclass
class TokenizerConfig:
    """What a tokenizer directory holds: the vocabulary file and how to apply it.

    Attributes:
        kind: ``wordpiece`` (``vocab.txt``) or ``sentencepiece`` (a ``.model`` file).
        vocab_file: Vocabulary file name, relative to the tokenizer directory.
        lower_case: Lower-case and strip accents before WordPiece (SentencePiece bakes its
            normalisation into the model).
        max_seq_length: Default packed length, including ``[CLS]`` and ``[SEP]``.
    """

    kind: str = "wordpiece"
    vocab_file: str = "vocab.txt"
    lower_case: bool = True
    max_seq_length: int = 128

    def save(self, directory: str) -> str:
        """Writes ``tokenizer_config.json`` into ``directory`` and returns its path."""
        path = os.path.join(directory, CONFIG_FILE)
        atomic_write_json(path, dataclasses.asdict(self))
        return path

    @classmethod
    def load(cls, directory: str) -> "TokenizerConfig":
        """Reads ``tokenizer_config.json`` from ``directory``.

        Raises:
            DataError: The file is missing or holds unknown keys.
        """
        path = os.path.join(directory, CONFIG_FILE)
        data = _read_file(path, "no tokenizer config (expected the tokenizer directory written by llm_prepare)")
        values = json.loads(data.decode("utf-8"))
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"{path}: unknown keys {', '.join(unknown)}")
        return cls(**values)


def load_vocab(path: str) -> list[str]:
    """Reads a WordPiece ``vocab.txt`` (one token a line).

    Raises:
        DataError: The file is missing, empty, lacks a special token, or repeats a token.
    """
    text = _read_file(path, "no such vocabulary file").decode("utf-8")
    vocab = [line.rstrip("\r\n") for line in io.StringIO(text, newline=None)]  # universal newlines, as open()
    while vocab and vocab[-1] == "":
        vocab.pop()
    if not vocab:
        raise DataError(f"{path}: vocabulary file is empty")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise DataError(f"{path}: vocabulary lacks the special token(s) {', '.join(missing)}")
    seen = set()
    for line, token in enumerate(vocab, start=1):
        if token in seen:
            raise DataError(f"{path}:{line}: token '{token}' appears twice")
        seen.add(token)
    return vocab


class TextTokenizer(tf.Module):
    """Maps raw strings (or pairs) to ``token_ids``, ``segment_ids`` and ``padding_mask``.

    Args:
        vocab_path: ``vocab.txt`` for WordPiece, or a SentencePiece ``.model`` file.
        kind: ``wordpiece`` or ``sentencepiece``.
        lower_case: WordPiece only: lower-case and strip accents first.
        max_seq_length: Default packed length.
        detokenize: WordPiece only: keep what :meth:`detokenize` needs (a second copy of the
            vocabulary inside the FastWordpiece model); False for a tokenizer that only
            tokenizes (e.g. inside a ``.tflite`` file). The ids are the same either way.

    Raises:
        DataError: The vocabulary is missing or unusable.
        ConfigError: Unknown ``kind`` or a length below 3.
    """

    def __init__(self, vocab_path: str, kind: str = "wordpiece", lower_case: bool = True, max_seq_length: int = 128,
                 detokenize: bool = True):
        super().__init__(name="text_tokenizer")
        if kind not in KINDS:
            raise ConfigError(f"unknown tokenizer kind '{kind}' (expected one of: {', '.join(KINDS)})")
        if max_seq_length < 3:
            raise ConfigError(f"max_seq_length must be >= 3, got {max_seq_length}")
        self.kind = kind
        self.lower_case = lower_case
        self.max_seq_length = max_seq_length
        self.vocab_asset = tf.saved_model.Asset(vocab_path)
        if kind == "wordpiece":
            self.vocab = load_vocab(vocab_path)
            self._tokenizer = tft.FastBertTokenizer(
                vocab=self.vocab,
                token_out_type=tf.int32,
                unknown_token=UNK,
                lower_case_nfd_strip_accents=lower_case,
                support_detokenization=detokenize,  # detokenize() fails without it
            )
        else:
            self.vocab, model = _load_sentencepiece(vocab_path)
            self._tokenizer = tft.FastSentencepieceTokenizer(model)
        ids = {token: i for i, token in enumerate(self.vocab)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (ids[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_directory(cls, directory: str, max_seq_length: int | None = None) -> "TextTokenizer":
        """Builds the tokenizer saved by ``llm_prepare`` in ``directory``."""
        config = TokenizerConfig.load(directory)
        return cls(
            os.path.join(directory, config.vocab_file),
            kind=config.kind,
            lower_case=config.lower_case,
            max_seq_length=max_seq_length or config.max_seq_length,
        )

    @property
    def vocab_size(self) -> int:
        """Number of ids (the embedding table's size)."""
        return len(self.vocab)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings [batch] -> int32 ids RaggedTensor [batch, (tokens)], no special tokens."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        ids = self._tokenizer.tokenize(texts)
        if isinstance(ids, tf.RaggedTensor) and ids.ragged_rank > 1:
            ids = ids.merge_dims(-2, -1)
        return tf.cast(ids, tf.int32)

    def detokenize(self, ids) -> tf.Tensor:
        """Ids [batch, (tokens)] -> strings [batch] (special tokens must be removed first)."""
        return self._tokenizer.detokenize(ids)

    def __call__(self, texts: tf.Tensor, pairs: tf.Tensor | None = None, seq_length: int | None = None) -> dict:
        """Tokenizes and packs a batch of strings (or pairs) to fixed-length model inputs.

        Args:
            texts: string Tensor [batch].
            pairs: Optional string Tensor [batch], the second segment.
            seq_length: Packed length; defaults to ``max_seq_length``.

        Returns:
            Dict of ``token_ids`` (int32), ``segment_ids`` (int32), ``padding_mask`` (bool),
            each [batch, seq_length].
        """
        seq_length = seq_length or self.max_seq_length
        first = self.tokenize(texts)
        if pairs is None:
            return packing.pack_single(first, seq_length, self.cls_id, self.sep_id, self.pad_id)
        return packing.pack_pair(first, self.tokenize(pairs), seq_length, self.cls_id, self.sep_id, self.pad_id)

    def tokenize_words(self, words: tf.RaggedTensor) -> tf.RaggedTensor:
        """Words [batch, (words)] -> ids [batch, (words), (pieces)].

        A word that tokenizes to nothing (e.g. only control characters) becomes ``[UNK]``, so
        every word has at least one piece and word/piece alignment never shifts.
        """
        words = words.with_row_splits_dtype(tf.int64)
        pieces = self.tokenize(words.flat_values)
        keep = tf.maximum(pieces.row_lengths(), 1)
        unk = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(keep)[0], 1], self.unk_id))
        padded = tf.concat([pieces, unk], axis=1)
        starts = padded.row_starts()
        pieces = tf.gather(padded.values, tf.ragged.range(starts, starts + keep))
        return words.with_flat_values(pieces)


def _load_sentencepiece(path: str) -> tuple[list[str], bytes]:
    import sentencepiece as spm

    model = _read_file(path, "no such SentencePiece model")
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except Exception as e:  # sentencepiece raises a bare RuntimeError/OSError
        raise DataError(f"{path}: not a SentencePiece model ({e})") from None
    vocab = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
    vocab[processor.unk_id()] = UNK
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise DataError(f"{path}: SentencePiece model lacks the special piece(s) {', '.join(missing)}")
    return vocab, model


def _read_file(path: str, missing: str) -> bytes:
    """The bytes of a local or ``scheme://`` file; DataError ``<path>: <missing>`` when it is no file."""
    if not io_utils.isfile(path):
        raise DataError(f"{path}: {missing}")
    return io_utils.read_bytes(path)
