"""Word/sub-word alignment for token classification (CoNLL NER).

Forward: each word's label goes on its first sub-word; the other sub-words, ``[CLS]``,
``[SEP]`` and padding get :data:`IGNORE_ID` (masked out of the loss). Reverse: sub-word
predictions back to one prediction per word, read from each word's first sub-word.
"""

import tensorflow as tf

from llm_tf.text import packing

#: Label id of positions that carry no word label (not scored).
IGNORE_ID = -1


def pack_words(tokenizer, words: tf.RaggedTensor, tags: tf.RaggedTensor | None = None,
               seq_length: int | None = None) -> dict:
    """Tokenizes words and packs them as one segment, with aligned labels and word ids.

    Args:
        tokenizer: A :class:`llm_tf.text.tokenizer.TextTokenizer`.
        words: string RaggedTensor [batch, (words)].
        tags: Optional int32 RaggedTensor [batch, (words)] of word label ids.
        seq_length: Packed length; defaults to the tokenizer's ``max_seq_length``.

    Returns:
        Dict with ``token_ids``, ``segment_ids``, ``padding_mask``, ``word_ids`` (the word each
        position belongs to, :data:`IGNORE_ID` for specials/padding), ``first_piece_mask``
        and, when ``tags`` is given, ``label_ids`` (the word label on first pieces, else
        :data:`IGNORE_ID`). All [batch, seq_length]. Words cut off by truncation are absent.
    """
    seq_length = seq_length or tokenizer.max_seq_length
    pieces = tokenizer.tokenize_words(words)  # [batch, (words), (pieces)]
    pieces_per_word = pieces.values.row_lengths()  # flat over all words in the batch
    flat_pieces = pieces.merge_dims(1, 2)  # [batch, (pieces)]
    word_index = tf.ragged.range(words.row_lengths()).flat_values
    piece_word_ids = flat_pieces.with_flat_values(tf.cast(tf.repeat(word_index, pieces_per_word), tf.int32))
    is_first = tf.ragged.range(pieces_per_word).flat_values == 0
    packed = packing.pack_single(flat_pieces, seq_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)

    def pack_aligned(values: tf.Tensor) -> tf.Tensor:
        aligned = flat_pieces.with_flat_values(values)
        return packing.pack_single(aligned, seq_length, IGNORE_ID, IGNORE_ID, IGNORE_ID)["token_ids"]

    packed["word_ids"] = pack_aligned(piece_word_ids.flat_values)
    packed["first_piece_mask"] = pack_aligned(tf.cast(is_first, tf.int32)) == 1
    if tags is not None:
        piece_tags = tf.repeat(tf.cast(tags.flat_values, tf.int32), pieces_per_word)
        packed["label_ids"] = pack_aligned(tf.where(is_first, piece_tags, IGNORE_ID))
    return packed


def word_predictions(piece_predictions: tf.Tensor, first_piece_mask: tf.Tensor,
                     num_words: int | tf.Tensor) -> tf.Tensor:
    """Maps per-position predictions back to one per word (the first sub-word's).

    Args:
        piece_predictions: [batch, seq_length] predicted label ids.
        first_piece_mask: [batch, seq_length] bool, from :func:`pack_words`.
        num_words: Width of the result (the longest sentence's word count).

    Returns:
        int32 [batch, num_words]; words cut off by truncation (or past a sentence's end) are
        :data:`IGNORE_ID`.
    """
    kept = tf.ragged.boolean_mask(tf.cast(piece_predictions, tf.int32), first_piece_mask)
    shape = tf.stack([tf.cast(kept.nrows(), tf.int64), tf.cast(num_words, tf.int64)])  # num_words may be a tensor
    return kept.to_tensor(default_value=IGNORE_ID, shape=shape)
