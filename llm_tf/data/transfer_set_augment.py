"""Embedding-neighbour augmentation of a transfer set's labelled sentences (:mod:`llm_tf.data.transfer_set`).

In the spirit of TinyBERT: each word of a copy that is a whole-word WordPiece token of the
checkpoint may be replaced by one of its nearest whole-word tokens by cosine similarity of the
checkpoint's token embedding table (:func:`nearest_neighbours`), then the copy may be cropped
to a contiguous span (:func:`augment`). Deterministic for a given seed.
"""

import dataclasses
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np

from llm_tf.data.transfer_set_sources import Report, normalise
from llm_tf.errors import DataError

#: The token embedding table among a checkpoint's backbone weights (``presets.backbone_weights``).
EMBEDDING_WEIGHT = "token_embedding/embeddings"
#: Query rows per block when computing nearest neighbours (a block x candidates float32 matrix).
NEIGHBOUR_CHUNK = 512

# A word with its leading and trailing punctuation: ("(", "film", "),").
_WORD = re.compile(r"^(\W*)(\w+)(\W*)$")


@dataclasses.dataclass
class NeighbourTable:
    """Nearest whole-word tokens of a checkpoint, for the words of a corpus.

    Attributes:
        neighbours: Lookup form of a word (lower-cased and accent-stripped for an uncased
            checkpoint) -> its nearest whole-word tokens, nearest first.
        lower_case: Whether words are lower-cased before the lookup.
        candidates: How many whole-word tokens the vocabulary has.
    """

    neighbours: dict[str, list[str]]
    lower_case: bool
    candidates: int

    def lookup_form(self, word: str) -> str:
        """The vocabulary form of ``word``."""
        return _lookup_form(word, self.lower_case)


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def _lookup_form(word: str, lower_case: bool) -> str:
    return _strip_accents(word.lower()) if lower_case else word


def is_whole_word_token(token: str) -> bool:
    """Whether a vocabulary entry is a whole word: alphabetic, not a ``##`` piece nor a ``[...]`` special."""
    return token.isalpha() and not token.startswith("##")


def load_token_embeddings(preset_name: str) -> tuple[np.ndarray, list[str], bool]:
    """Reads a checkpoint's token embedding table and WordPiece vocabulary.

    The weights come through :func:`llm_tf.models.presets.backbone_weights` (keras-hub's own
    loader, for Hugging Face and keras-hub checkpoints alike), the vocabulary through
    :func:`llm_tf.text.tokenizer.load_vocab`.

    Args:
        preset_name: A named preset, a Hugging Face BERT directory or a keras-hub preset directory.

    Returns:
        ``(embeddings [vocab, hidden] float32, vocabulary, lower_case)``.

    Raises:
        ConfigError: Not a usable BERT checkpoint (see :func:`llm_tf.models.presets.open_preset`).
        DataError: The weights do not load, or the table is smaller than the vocabulary.
    """
    from llm_tf.models import presets
    from llm_tf.text.tokenizer import load_vocab

    preset = presets.open_preset(preset_name, "--preset")
    vocab = load_vocab(preset.vocab_file)
    embeddings = presets.backbone_weights(preset)[EMBEDDING_WEIGHT]
    if embeddings.ndim != 2 or embeddings.shape[0] < len(vocab):
        raise DataError(f"{preset.directory}: the token embedding table has shape {embeddings.shape}, fewer rows "
                        f"than the {len(vocab)} tokens of {preset.vocab_file}")
    return embeddings[: len(vocab)].astype(np.float32), vocab, preset.lower_case


def nearest_neighbours(embeddings: np.ndarray, vocab: list[str], words: list[str], k: int,
                       lower_case: bool = True) -> NeighbourTable:
    """Finds each word's ``k`` nearest whole-word tokens by cosine similarity of token embeddings.

    Only ``words`` that are whole-word tokens of ``vocab`` get neighbours; candidates are the
    whole-word tokens (:func:`is_whole_word_token`) other than the word itself. Ties are
    broken by vocabulary id, so the table is deterministic.

    Args:
        embeddings: ``[len(vocab), hidden]`` token embedding table.
        vocab: The vocabulary, in id order.
        words: Corpus words in lookup form (any order, duplicates allowed).
        k: Neighbours per word.
        lower_case: Stored in the table (how corpus words are looked up).

    Returns:
        The :class:`NeighbourTable`.
    """
    candidate_ids = np.array([i for i, token in enumerate(vocab) if is_whole_word_token(token)], dtype=np.int64)
    index = {vocab[i]: i for i in candidate_ids}
    queries = sorted({w for w in words if w in index})
    table: dict[str, list[str]] = {}
    if not queries or len(candidate_ids) < 2:
        return NeighbourTable(table, lower_case, len(candidate_ids))
    matrix = embeddings[candidate_ids].astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    position = {int(token_id): p for p, token_id in enumerate(candidate_ids)}
    k = min(k, len(candidate_ids) - 1)
    for start in range(0, len(queries), NEIGHBOUR_CHUNK):
        chunk = queries[start: start + NEIGHBOUR_CHUNK]
        rows = np.array([position[index[w]] for w in chunk])
        scores = matrix[rows] @ matrix.T
        scores[np.arange(len(chunk)), rows] = -np.inf  # never the word itself
        top = np.argpartition(-scores, k, axis=1)[:, : k + 1]
        for i, word in enumerate(chunk):
            best = top[i]
            # Nearest first; equal scores by vocabulary id (argpartition's order is not stable).
            order = np.lexsort((candidate_ids[best], -scores[i, best]))
            table[word] = [vocab[candidate_ids[j]] for j in best[order][:k]]
    return NeighbourTable(table, lower_case, len(candidate_ids))


def _match_case(replacement: str, word: str) -> str:
    if len(word) > 1 and word.isupper():
        return replacement.upper()
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def augment(text: str, table: NeighbourTable, rng: np.random.Generator, replace_prob: float, crop_prob: float,
            min_words: int) -> tuple[str, int, bool]:
    """One augmented copy of ``text``: embedding-neighbour word replacement, then an optional crop.

    Args:
        text: A sentence (white-space separated words; punctuation around a word is kept).
        table: Neighbours of the replaceable words.
        rng: The random generator (consumed identically for equal inputs).
        replace_prob: Probability that a replaceable word is replaced.
        crop_prob: Probability of cropping to a contiguous span of at least
            ``max(min_words, ceil(words / 2))`` words (fewer words than the original).
        min_words: See ``crop_prob``.

    Returns:
        ``(copy, number of words replaced, whether it was cropped)``.
    """
    words = text.split()
    draws = rng.random(len(words))
    picks = rng.integers(0, 1 << 30, len(words))
    replaced = 0
    for i, word in enumerate(words):
        if draws[i] >= replace_prob:
            continue
        match = _WORD.match(word)
        if not match or not match.group(2).isalpha():
            continue
        lead, core, trail = match.groups()
        options = table.neighbours.get(table.lookup_form(core))
        if not options:
            continue
        words[i] = lead + _match_case(options[picks[i] % len(options)], core) + trail
        replaced += 1
    cropped = False
    shortest = max(min_words, (len(words) + 1) // 2)
    if rng.random() < crop_prob and len(words) > shortest:
        length = int(rng.integers(shortest, len(words)))  # shortest .. len - 1
        start = int(rng.integers(0, len(words) - length + 1))
        words = words[start: start + length]
        cropped = True
    return " ".join(words), replaced, cropped




def augment_all(labelled: list[tuple[str, str]], offer: Callable[[str, str, str], bool], report: Report,
                rng: np.random.Generator, *, preset: str, copies: int, neighbours: int, replace_prob: float,
                crop_prob: float, min_words: int) -> dict[str, Any]:
    """Offers ``copies`` augmented copies (:func:`augment`) of each labelled sentence of at least ``min_words`` words.

    Args:
        labelled: The kept labelled rows ``(text, label)``: never a copy of an excluded or duplicate one.
        offer: Called as ``offer(copy, label, "augmented")``; decides whether the copy is kept.
        report: Counts the candidates and the copies equal to their source.
        rng: The augmentation's random generator.
        preset: The checkpoint whose token embeddings give the neighbours (:func:`load_token_embeddings`).
        copies, neighbours, replace_prob, crop_prob, min_words: As in
            :class:`~llm_tf.data.transfer_set.TransferSetConfig` (``copies`` is ``augment_copies``).

    Returns:
        The summary's ``augmentation`` section.
    """
    embeddings, vocab, lower_case = load_token_embeddings(preset)
    sources = labelled  # the kept labelled rows: never a copy of an excluded or duplicate one
    short = sum(1 for text, _ in sources if len(text.split()) < min_words)
    sources = [(text, label) for text, label in sources if len(text.split()) >= min_words]
    corpus_words = set()
    for text, _ in sources:
        for word in text.split():
            match = _WORD.match(word)
            if match and match.group(2).isalpha():
                corpus_words.add(_lookup_form(match.group(2), lower_case))
    table = nearest_neighbours(embeddings, vocab, sorted(corpus_words), neighbours, lower_case)
    replaced_words = cropped = 0
    for text, label in sources:
        source_key = normalise(text)
        for _ in range(copies):
            copy, replaced, was_cropped = augment(text, table, rng, replace_prob, crop_prob, min_words)
            replaced_words += replaced
            cropped += was_cropped
            report.candidates["augmented"] += 1
            if normalise(copy) == source_key:
                report.dropped["augmented"]["same_as_source"] += 1
                continue
            offer(copy, label, "augmented")
    return {
        "copies": copies,
        "preset": preset,
        "sources": len(sources),
        "sources_too_short": short,
        "corpus_words": len(corpus_words),
        "replaceable_words": len(table.neighbours),
        "candidate_tokens": table.candidates,
        "replaced_words": replaced_words,
        "cropped": cropped,
    }
