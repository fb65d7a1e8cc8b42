"""Cutting a pre-trained WordPiece vocabulary down to the tokens a task corpus uses.

The embedding table is most of a small BERT (all-MiniLM-L6-v2: 11.7M of 22.7M parameters are
its 30,522 token rows), and a task corpus uses a fraction of them. :func:`cut_vocabulary`
tokenizes the corpus with the full vocabulary, keeps the most used tokens (up to a size), and
returns them in the full vocabulary's order, so the embedding rows of a model built for the
cut vocabulary are a row gather of the full model's (:func:`row_indices`).

What is always kept, whatever its count:

* the special tokens (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``);
* every single-character token and its ``##`` continuation form for each character that
  occurs in the corpus's tokens, plus printable ASCII: a word whose pieces were cut is then
  still spelled out in smaller pieces instead of becoming ``[UNK]``.

Because WordPiece matches greedily longest-first and the cut vocabulary is a subset of the
full one, a word whose full-vocabulary pieces are all kept is tokenized exactly as before;
a word that was ``[UNK]`` stays ``[UNK]``. Only words with a cut piece change: they are split
into smaller kept pieces.

Example:
    >>> cut = cut_vocabulary(full_vocab, tokenizer, texts, max_size=5000)
    >>> cut.tokens[:2], cut.coverage
    (['[PAD]', '[UNK]'], 0.97)
"""

import dataclasses
import string
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError
from llm_tf.text.tokenizer import SPECIAL_TOKENS

#: Written beside the cut ``vocab.txt`` by ``llm_prepare --vocab_cut``: the source vocabulary and the cut's sizes.
CUT_FILE = "vocab_cut.json"
#: Continuation prefix of WordPiece vocabularies.
CONTINUATION = "##"


@dataclasses.dataclass
class VocabularyCut:
    """The result of :func:`cut_vocabulary`.

    Attributes:
        tokens: The kept tokens, in the full vocabulary's order.
        full_size: Size of the full vocabulary.
        used: Distinct tokens of the full vocabulary the corpus used.
        coverage: Share of the corpus's token occurrences whose token is kept.
        corpus_tokens: Token occurrences counted.
    """

    tokens: list[str]
    full_size: int
    used: int
    coverage: float
    corpus_tokens: int

    def summary(self) -> dict:
        """A JSON-able description (sizes and coverage, not the tokens)."""
        return {"size": len(self.tokens), "full_size": self.full_size, "used_by_corpus": self.used,
                "coverage": round(self.coverage, 6), "corpus_tokens": self.corpus_tokens}


def count_tokens(tokenize, texts: Iterable[tf.Tensor], vocab_size: int) -> np.ndarray:
    """Counts token ids over batches of texts.

    Args:
        tokenize: Strings [batch] -> ragged ids (e.g. ``TextTokenizer.tokenize``).
        texts: Batches of strings.
        vocab_size: Number of ids.

    Returns:
        int64 counts [vocab_size].
    """
    counts = np.zeros([vocab_size], np.int64)
    for batch in texts:
        ids = tokenize(batch).flat_values.numpy()
        counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]
    return counts


def select_tokens(vocab: list[str], counts: np.ndarray, max_size: int) -> list[str]:
    """The kept tokens: specials, the corpus's characters, then the most counted, in vocabulary order.

    Ties in count are broken by the lower id (deterministic).

    Args:
        vocab: The full vocabulary.
        counts: Occurrences of each token in the corpus.
        max_size: Most tokens to keep (the always-kept ones included).

    Raises:
        ConfigError: ``max_size`` is smaller than the tokens that must be kept.
    """
    ids = {token: i for i, token in enumerate(vocab)}
    characters = set(string.printable.strip().lower())
    for token, count in zip(vocab, counts):
        if count:
            characters.update(token.removeprefix(CONTINUATION))
    always = {ids[t] for t in SPECIAL_TOKENS}
    for char in characters:
        for token in (char, CONTINUATION + char):
            if token in ids:
                always.add(ids[token])
    if max_size < len(always):
        raise ConfigError(f"vocabulary cut to {max_size} tokens is below the {len(always)} that must stay (special "
                          "tokens and the corpus's single characters); raise it")
    order = sorted((i for i in np.flatnonzero(counts) if i not in always), key=lambda i: (-counts[i], i))
    kept = always | set(order[:max_size - len(always)])
    return [vocab[i] for i in sorted(kept)]


def cut_vocabulary(vocab: list[str], tokenize, texts: Iterable[tf.Tensor], max_size: int) -> VocabularyCut:
    """Keeps the ``max_size`` tokens of ``vocab`` that matter for a corpus (see the module docstring).

    Args:
        vocab: The full WordPiece vocabulary (id order).
        tokenize: The full vocabulary's tokenizer: strings [batch] -> ragged ids.
        texts: Batches of corpus strings.
        max_size: Most tokens to keep.

    Returns:
        A :class:`VocabularyCut`.

    Raises:
        ConfigError: ``max_size`` < 1 or below the always-kept tokens.
        DataError: The corpus is empty.
    """
    if max_size < 1:
        raise ConfigError(f"vocabulary cut size must be >= 1, got {max_size}")
    counts = count_tokens(tokenize, texts, len(vocab))
    total = int(counts.sum())
    if not total:
        raise DataError("cannot cut the vocabulary: the corpus has no tokens")
    tokens = select_tokens(vocab, counts, max_size)
    kept_tokens = set(tokens)
    kept = np.array([t in kept_tokens for t in vocab])
    return VocabularyCut(tokens, len(vocab), int(np.count_nonzero(counts)), float(counts[kept].sum() / total), total)


def row_indices(cut_tokens: list[str], full_vocab: list[str], cut_name: str = "cut vocabulary",
                full_name: str = "full vocabulary") -> np.ndarray:
    """For each token of a cut vocabulary, its id in the full one (a row gather of embeddings).

    Raises:
        ConfigError: A token of the cut vocabulary is not in the full one (the first is named).
    """
    ids = {token: i for i, token in enumerate(full_vocab)}
    missing = [t for t in cut_tokens if t not in ids]
    if missing:
        raise ConfigError(f"{cut_name} has {len(missing)} token(s) not in {full_name}, first '{missing[0]}': "
                          "it is not a cut of that vocabulary")
    return np.array([ids[t] for t in cut_tokens], np.int64)
