"""Vocabulary training: WordPiece (tensorflow-text's learner) or SentencePiece.

Both are reproducible: the same corpus in the same order gives the same vocabulary, and the
special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` always take ids 0 to 4.
"""

import collections
import io
import os
from collections.abc import Iterable

import tensorflow as tf

from llm_tf import compat
from llm_tf.errors import DataError
from llm_tf.io_utils import atomic_write_bytes, atomic_write_text
from llm_tf.text.tokenizer import SPECIAL_TOKENS


def count_words(texts: tf.data.Dataset, lower_case: bool = True, batch_size: int = 1024) -> collections.Counter:
    """Counts words as BERT's basic tokenizer splits them (the split WordPiece learns on).

    Args:
        texts: A dataset of scalar strings.
        lower_case: Lower-case and strip accents, as the tokenizer will.
        batch_size: Strings per TensorFlow call.

    Returns:
        Word (bytes) to count.
    """
    splitter = compat.basic_tokenizer(lower_case)
    words = texts.batch(batch_size).map(lambda t: splitter.tokenize(t).flat_values, num_parallel_calls=tf.data.AUTOTUNE)
    counts: collections.Counter = collections.Counter()
    for batch in words.as_numpy_iterator():
        counts.update(batch.tolist())
    return counts


def train_wordpiece(
    texts: tf.data.Dataset,
    vocab_size: int,
    lower_case: bool = True,
    reserved_tokens: Iterable[str] = SPECIAL_TOKENS,
) -> list[str]:
    """Learns a WordPiece vocabulary from a corpus.

    Args:
        texts: A dataset of scalar strings (the training split).
        vocab_size: Target size, reserved tokens included (an upper bound).
        lower_case: Must match the tokenizer's ``lower_case``.
        reserved_tokens: Tokens placed first, in order.

    Returns:
        The vocabulary, reserved tokens first.

    Raises:
        DataError: The corpus has no words, or ``vocab_size`` is too small.

    Example:
        >>> vocab = train_wordpiece(tf.data.Dataset.from_tensor_slices(["a fine film"]), 100)
        >>> vocab[:5]
        ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    """
    reserved = list(reserved_tokens)
    if vocab_size <= len(reserved):
        raise DataError(f"vocab_size must exceed the {len(reserved)} reserved tokens, got {vocab_size}")
    return wordpiece_from_counts(count_words(texts, lower_case=lower_case).items(), vocab_size, reserved)


def wordpiece_from_counts(
    word_counts: Iterable[tuple[bytes, int]],
    vocab_size: int,
    reserved_tokens: Iterable[str] = SPECIAL_TOKENS,
) -> list[str]:
    """Learns a WordPiece vocabulary from word counts (:func:`train_wordpiece` after counting).

    A distributed run (``llm_prepare --runner``) counts the words on its workers and learns
    here, so its vocabulary is :func:`train_wordpiece`'s on the same corpus.

    Args:
        word_counts: (word as UTF-8 bytes, count) pairs, in the order :func:`count_words`
            first meets the words (the learner breaks ties of its input cap by that order).
        vocab_size: Target size, reserved tokens included (an upper bound).
        reserved_tokens: Tokens placed first, in order.

    Returns:
        The vocabulary, reserved tokens first.

    Raises:
        DataError: There is no word, or ``vocab_size`` is too small.
    """
    reserved = list(reserved_tokens)
    if vocab_size <= len(reserved):
        raise DataError(f"vocab_size must exceed the {len(reserved)} reserved tokens, got {vocab_size}")
    word_counts = [(w.decode("utf-8"), c) for w, c in word_counts]
    if not word_counts:
        raise DataError("cannot learn a vocabulary: the corpus has no words")
    # The learner binary-searches a minimum count between the thresholds until the size fits.
    # tensorflow-text's default lower bound (10) leaves small corpora with characters only;
    # 1 lets them keep their words and changes nothing where the size is met above 10.
    vocab = compat.learn_wordpiece_vocab(word_counts, vocab_size, reserved, upper_thresh=10_000_000, lower_thresh=1,
                                         num_iterations=4)
    # The learner places reserved tokens first, but keep the guarantee explicit.
    vocab = reserved + [t for t in vocab if t not in reserved]
    return vocab[:vocab_size] if len(vocab) > vocab_size else vocab


def save_wordpiece(path: str, vocab: list[str]) -> None:
    """Writes ``vocab.txt`` (one token a line) atomically."""
    atomic_write_text(path, "".join(f"{token}\n" for token in vocab))


def train_sentencepiece(
    texts: Iterable[str], vocab_size: int, lower_case: bool = True, model_type: str = "unigram"
) -> bytes:
    """Trains a SentencePiece model whose first ids are ``[PAD] [UNK] [CLS] [SEP] [MASK]``.

    Args:
        texts: The corpus, one example per item.
        vocab_size: Maximum number of pieces (fewer when the corpus is small).
        lower_case: Case-fold in the model's normaliser (``nmt_nfkc_cf``).
        model_type: ``unigram`` or ``bpe``.

    Returns:
        The serialized model (write it to ``spm.model``).

    Raises:
        DataError: SentencePiece rejects the corpus or size (its reason is included).
    """
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            unk_piece=SPECIAL_TOKENS[1],
            pad_piece=SPECIAL_TOKENS[0],
            control_symbols=list(SPECIAL_TOKENS[2:]),
            normalization_rule_name="nmt_nfkc_cf" if lower_case else "nmt_nfkc",
            hard_vocab_limit=False,  # vocab_size is an upper bound, as for WordPiece
            num_threads=1,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise DataError(f"SentencePiece training failed: {str(e).strip().splitlines()[-1]}") from None
    return model.getvalue()


def save_sentencepiece(directory: str, model: bytes, name: str = "spm") -> str:
    """Writes ``<name>.model`` and a readable ``<name>.vocab`` into ``directory``; returns the model path."""
    import sentencepiece as spm

    path = os.path.join(directory, f"{name}.model")
    atomic_write_bytes(path, model)
    processor = spm.SentencePieceProcessor(model_proto=model)
    atomic_write_text(
        os.path.join(directory, f"{name}.vocab"),
        "".join(f"{processor.IdToPiece(i)}\n" for i in range(processor.GetPieceSize())),
    )
    return path
