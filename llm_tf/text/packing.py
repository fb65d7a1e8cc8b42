"""Packs ragged token ids into fixed-length BERT inputs with dense ops only.

``tensorflow_text.combine_segments`` emits ``RaggedGather``, which has no TFLite kernel.
These functions do the same job (truncate, add ``[CLS]``/``[SEP]``, pad, build
``segment_ids`` and ``padding_mask``) with one ``RaggedTensorToTensor`` per segment and
element-wise arithmetic on positions, so the graph converts to TFLite with the tf-text
custom ops alone. Truncation of pairs is round-robin, like ``tensorflow_text.RoundRobinTrimmer``.
"""

import tensorflow as tf


def _dense(ids: tf.RaggedTensor, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Ragged [batch, (n)] -> dense [batch, max(width, 1)] (truncated, zero-padded) and kept lengths.

    At least one column is kept so that gathers stay in range when ``width`` is 0.
    """
    dense = ids.to_tensor(default_value=0, shape=[None, max(width, 1)])
    lengths = tf.minimum(tf.cast(ids.row_lengths(), tf.int32), width)
    return dense, lengths


def _take(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """values[b, index[b, p]] for every b, p (index already broadcast to [batch, seq])."""
    return tf.gather(values, index, batch_dims=1)


def pack_single(ids: tf.RaggedTensor, seq_length: int, cls_id: int, sep_id: int, pad_id: int = 0) -> dict:
    """Packs one segment: ``[CLS] a... [SEP] [PAD]...``, truncating ``a`` to fit.

    Args:
        ids: int32 RaggedTensor [batch, (tokens)].
        seq_length: Output length (>= 2).
        cls_id, sep_id, pad_id: Special token ids.

    Returns:
        Dict with ``token_ids`` (int32), ``segment_ids`` (int32) and ``padding_mask`` (bool),
        each of shape [batch, seq_length].
    """
    budget = seq_length - 2
    tokens, length = _dense(ids, budget)
    batch = tf.shape(tokens)[0]
    pos = tf.range(seq_length)[tf.newaxis, :]
    n = length[:, tf.newaxis]
    body = _take(tokens, tf.broadcast_to(tf.clip_by_value(pos - 1, 0, max(budget - 1, 0)), [batch, seq_length]))
    token_ids = tf.where(
        pos == 0, cls_id, tf.where(pos <= n, body, tf.where(pos == n + 1, sep_id, pad_id))
    )
    padding_mask = pos <= n + 1
    return {
        "token_ids": token_ids,
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": tf.broadcast_to(padding_mask, [batch, seq_length]),
    }


def pair_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Round-robin truncation lengths: take one token from each segment in turn, a first."""
    keep_a = tf.minimum(len_a, tf.maximum(budget - len_b, (budget + 1) // 2))
    keep_b = tf.minimum(len_b, budget - keep_a)
    return keep_a, keep_b


def pack_pair(
    ids_a: tf.RaggedTensor, ids_b: tf.RaggedTensor, seq_length: int, cls_id: int, sep_id: int, pad_id: int = 0
) -> dict:
    """Packs two segments: ``[CLS] a... [SEP] b... [SEP] [PAD]...`` with round-robin truncation.

    Args:
        ids_a, ids_b: int32 RaggedTensors [batch, (tokens)].
        seq_length: Output length (>= 3).
        cls_id, sep_id, pad_id: Special token ids.

    Returns:
        Dict with ``token_ids``, ``segment_ids`` (0 for a, 1 for b) and ``padding_mask``.
    """
    budget = seq_length - 3
    tokens_a, len_a = _dense(ids_a, budget)
    tokens_b, len_b = _dense(ids_b, budget)
    keep_a, keep_b = pair_lengths(len_a, len_b, budget)
    batch = tf.shape(tokens_a)[0]
    shape = [batch, seq_length]
    pos = tf.range(seq_length)[tf.newaxis, :]
    na = keep_a[:, tf.newaxis]
    nb = keep_b[:, tf.newaxis]
    body_a = _take(tokens_a, tf.broadcast_to(tf.clip_by_value(pos - 1, 0, max(budget - 1, 0)), shape))
    body_b = _take(tokens_b, tf.broadcast_to(tf.clip_by_value(pos - na - 2, 0, max(budget - 1, 0)), shape))
    in_a = (pos >= 1) & (pos <= na)
    in_b = (pos >= na + 2) & (pos <= na + nb + 1)
    is_sep = (pos == na + 1) | (pos == na + nb + 2)
    token_ids = tf.where(
        pos == 0, cls_id, tf.where(in_a, body_a, tf.where(in_b, body_b, tf.where(is_sep, sep_id, pad_id)))
    )
    padding_mask = pos <= na + nb + 2
    segment_ids = tf.cast((pos >= na + 2) & padding_mask, tf.int32)
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
