"""Text generation with a decoder-only LM: greedy, top-k and top-p (nucleus) sampling, in-graph.

Everything is TensorFlow ops, so :func:`generate` can be traced into a SavedModel signature
(raw prompt strings in, generated strings out) and :func:`generate_tokens`, the token-level
core, compiles with XLA (``tf.function(jit_compile=True)``) for fixed-shape inputs.

How it works (the same scheme as keras-hub's ``GPT2CausalLM.generate_step``): prompts are
``[CLS] tokens``, right-padded into one buffer of ``longest prompt + max_new_tokens``
positions. One forward pass fills a key/value cache; then a ``tf.while_loop`` feeds one
position at a time from the shortest prompt's end, keeping prompt tokens where a row still has
them and writing the sampled token elsewhere. A row ends at ``[SEP]`` (the stop token, which
is not returned) or after ``max_new_tokens`` new tokens; the loop ends when every row has.

Why our own sampler rather than ``keras_hub.samplers.*``: those take ``k``, ``p``,
``temperature`` and the seed as Python constructor arguments and draw from a stateful
``SeedGenerator``, so a serving signature could not take them per request and the same seed
would not give the same text twice. Here all of them may be tensors, and sampling uses
stateless random ops seeded with ``(seed, position)``: the same inputs and seed give the same
output, in eager mode, in a ``tf.function`` and in an exported model.

Strategies:
    * ``greedy``: the most likely token (``temperature``, ``top_k``, ``top_p`` ignored).
    * ``top_k``: sample among the ``top_k`` most likely tokens after dividing the logits by
      ``temperature``.
    * ``top_p``: sample from the nucleus, the smallest set of most likely tokens whose
      probability (at ``temperature``) reaches ``top_p``; ``top_k`` > 0 also caps its size.

Example:
    >>> texts = generate(model, tokenizer, tf.constant(["the movie was"]), max_new_tokens=20,
    ...                  strategy="top_p", top_p=0.9, temperature=0.8, seed=1)
"""

import keras
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.models.causal_lm import decoder_of

#: Sampling strategies, in the order of their codes inside the graph.
STRATEGIES = ("greedy", "top_k", "top_p")
GREEDY, TOP_K, TOP_P = range(len(STRATEGIES))
_NEG = -1e9  # logit of a token outside the candidates (finite: -inf can turn into NaN)


def check_generation_args(max_new_tokens, strategy, top_k, top_p, temperature, prefix: str = "") -> None:
    """Validates generation settings given as Python values (tensors are left to the graph).

    Args:
        max_new_tokens: Tokens to generate at most (>= 1).
        strategy: One of :data:`STRATEGIES`.
        top_k: Candidates for ``top_k`` (>= 1); for ``top_p`` an optional cap (>= 0, 0 = none).
        top_p: Nucleus mass for ``top_p``, in (0, 1].
        temperature: Logit divisor for sampling (> 0).
        prefix: Prepended to the names in messages (e.g. ``task.generation.``).

    Raises:
        ConfigError: A value out of range or an unknown strategy; the message names it.
    """
    def is_python(value) -> bool:
        return isinstance(value, (int, float, str)) and not isinstance(value, bool)

    if is_python(strategy) and strategy not in STRATEGIES:
        raise ConfigError(f"{prefix}strategy: unknown '{strategy}' (expected one of: {', '.join(STRATEGIES)})")
    if is_python(max_new_tokens) and max_new_tokens < 1:
        raise ConfigError(f"{prefix}max_new_tokens must be >= 1, got {max_new_tokens}")
    if is_python(temperature) and not temperature > 0:
        raise ConfigError(f"{prefix}temperature must be > 0, got {temperature}")
    if is_python(top_p) and not 0 < top_p <= 1:
        raise ConfigError(f"{prefix}top_p must be in (0, 1], got {top_p}")
    if is_python(top_k) and top_k < 0:
        raise ConfigError(f"{prefix}top_k must be >= 0, got {top_k}")
    if is_python(top_k) and strategy == "top_k" and top_k < 1:
        raise ConfigError(f"{prefix}top_k must be >= 1 with strategy top_k, got {top_k}")


def strategy_code(strategy) -> tf.Tensor:
    """A strategy name (str or scalar string tensor) as its int32 code (index in :data:`STRATEGIES`).

    Args:
        strategy: ``greedy``, ``top_k`` or ``top_p``.

    Returns:
        Scalar int32 code. An unknown name given as a tensor fails an in-graph assertion.

    Raises:
        ConfigError: An unknown name given as a Python string.
    """
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy: unknown '{strategy}' (expected one of: {', '.join(STRATEGIES)})")
        return tf.constant(STRATEGIES.index(strategy), tf.int32)
    strategy = tf.convert_to_tensor(strategy, tf.string)
    matches = tf.equal(tf.constant(STRATEGIES), strategy)
    check = tf.debugging.Assert(tf.reduce_any(matches), ["unknown generation strategy:", strategy])
    with tf.control_dependencies([check]):
        return tf.cast(tf.argmax(tf.cast(matches, tf.int32)), tf.int32)


def sample_next_token(logits: tf.Tensor, strategy, top_k, top_p, temperature, seed) -> tf.Tensor:
    """Picks one token per row from next-token logits.

    Args:
        logits: float [batch, vocabulary] (the vocabulary size must be static).
        strategy: Strategy code (int32 scalar, see :func:`strategy_code`) or name.
        top_k: int scalar: candidates for ``top_k``; a cap for ``top_p`` when > 0.
        top_p: float scalar: nucleus mass for ``top_p``.
        temperature: float scalar > 0 (values below 1e-6 are clamped).
        seed: int [2] stateless seed (e.g. ``[seed, position]``).

    Returns:
        int32 token ids [batch].
    """
    code = strategy if not isinstance(strategy, str) else strategy_code(strategy)
    code = tf.cast(code, tf.int32)
    logits = tf.cast(logits, tf.float32)
    vocabulary = logits.shape[-1]
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    # Sorted descending; ranks index the candidates, so ties cannot widen the top k.
    sorted_logits, sorted_ids = tf.math.top_k(scaled, k=vocabulary)
    ranks = tf.range(vocabulary, dtype=tf.int32)[tf.newaxis, :]
    top_k = tf.cast(top_k, tf.int32)
    k = tf.where(tf.logical_or(tf.equal(code, TOP_K), top_k > 0), tf.maximum(top_k, 1), vocabulary)
    keep = ranks < k
    # Nucleus: a token is in when the mass of the tokens ranked above it is below top_p.
    mass_above = tf.math.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1, exclusive=True)
    in_nucleus = mass_above < tf.cast(top_p, tf.float32)
    keep = tf.logical_and(keep, tf.logical_or(tf.not_equal(code, TOP_P), in_nucleus))
    keep = tf.logical_or(keep, tf.equal(ranks, 0))  # the best token is always a candidate
    candidates = tf.where(keep, sorted_logits, _NEG)
    seed = tf.cast(seed, tf.int32)  # XLA's StatelessMultinomial takes int32 seeds
    choice = tf.random.stateless_categorical(candidates, 1, seed=seed, dtype=tf.int32)
    sampled = tf.gather(sorted_ids, choice, batch_dims=1)[:, 0]
    return tf.where(tf.equal(code, GREEDY), greedy, sampled)


def call_with_cache(backbone, token_ids: tf.Tensor, cache: tf.Tensor, index) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs the decoder on ``token_ids`` placed at ``index``, reading and updating a key/value cache.

    Args:
        backbone: A keras-hub ``GPT2Backbone``.
        token_ids: int32 [batch, n]: the tokens at positions ``index .. index + n - 1``.
        cache: [batch, layers, 2, length, heads, head_dim] keys and values of earlier positions.
        index: int scalar position of ``token_ids[:, 0]``.

    Returns:
        float32 logits [batch, n, vocabulary] for the tokens after each position, and the
        updated cache.
    """
    tokens = backbone.token_embedding(token_ids)
    positions = backbone.position_embedding(tokens, start_index=index)
    x = backbone.embeddings_add((tokens, positions))
    caches = []
    for i, layer in enumerate(backbone.transformer_layers):
        x, layer_cache = layer(x, self_attention_cache=cache[:, i, ...], self_attention_cache_update_index=index)
        caches.append(layer_cache)
    hidden = backbone.layer_norm(x)
    logits = tf.cast(backbone.token_embedding(hidden, reverse=True), tf.float32)
    return logits, tf.stack(caches, axis=1)


def empty_cache(backbone, batch_size, length) -> tf.Tensor:
    """Zeros of the cache shape [batch, layers, 2, length, heads, head_dim] in the compute dtype."""
    head_dim = backbone.hidden_dim // backbone.num_heads
    shape = [batch_size, backbone.num_layers, 2, length, backbone.num_heads, head_dim]
    return tf.zeros(shape, dtype=backbone.compute_dtype)


def generate_tokens(model: keras.Model, token_ids: tf.Tensor, prompt_lengths: tf.Tensor, max_new_tokens,
                    stop_token_id, pad_token_id, strategy="greedy", top_k=0, top_p=1.0, temperature=1.0,
                    seed=0) -> tuple[tf.Tensor, tf.Tensor]:
    """The token-level core: continues right-padded prompts in a key/value-cached while loop.

    Args:
        model: A causal LM (:func:`llm_tf.models.causal_lm.build_causal_lm`) or its backbone.
        token_ids: int32 [batch, length]: each row's prompt (``[CLS]`` first) in its first
            ``prompt_lengths`` positions, then padding; ``length`` >= longest prompt +
            ``max_new_tokens`` and <= the model's ``max_sequence_length``.
        prompt_lengths: int32 [batch], each >= 1.
        max_new_tokens: int scalar: new tokens per row at most.
        stop_token_id: int scalar: ends a row (``[SEP]``); -1 never stops.
        pad_token_id: int scalar written where a row has ended.
        strategy: Name or code (see :data:`STRATEGIES`); ``top_k``, ``top_p``,
            ``temperature``: see :func:`sample_next_token`; ``seed``: int scalar.

    Returns:
        ``(token_ids, new_token_mask)``: the filled buffer [batch, length] and a bool mask of
        the generated tokens (after the prompt, before the stop token and within
        ``max_new_tokens``).
    """
    backbone = decoder_of(model)
    code = strategy_code(strategy)
    token_ids = tf.cast(token_ids, tf.int32)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    max_new_tokens = tf.cast(max_new_tokens, tf.int32)
    stop_token_id = tf.cast(stop_token_id, tf.int32)
    pad_token_id = tf.cast(pad_token_id, tf.int32)
    seed = tf.cast(seed, tf.int32)
    batch_size, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    positions = tf.range(length, dtype=tf.int32)[tf.newaxis, :]
    in_prompt = positions < prompt_lengths[:, tf.newaxis]
    limits = tf.minimum(prompt_lengths + max_new_tokens, length)  # first position a row may not fill
    token_ids = tf.where(in_prompt, token_ids, pad_token_id)

    # One pass over the whole buffer seeds the cache; positions from the shortest prompt's end
    # on are recomputed in the loop with the tokens that end up there.
    _, cache = call_with_cache(backbone, token_ids, empty_cache(backbone, batch_size, length), 0)
    start = tf.reduce_min(prompt_lengths)

    def cond(ids, cache, index, done):
        return tf.logical_and(index < length, tf.logical_not(tf.reduce_all(done)))

    def body(ids, cache, index, done):
        # Gathers and a where over positions, not slices: shapes stay static for XLA.
        logits, cache = call_with_cache(backbone, tf.gather(ids, [index - 1], axis=1), cache, index - 1)
        step_seed = tf.stack([seed, index])
        sampled = sample_next_token(logits[:, 0, :], code, top_k, top_p, temperature, step_seed)
        prompt_here = tf.gather(in_prompt, index, axis=1)
        current = tf.gather(ids, index, axis=1)
        token = tf.where(prompt_here, current, tf.where(done, pad_token_id, sampled))
        ids = tf.where(tf.equal(positions, index), token[:, tf.newaxis], ids)
        stopped = tf.logical_and(tf.logical_not(prompt_here), tf.equal(token, stop_token_id))
        done = done | stopped | (index + 1 >= limits)
        return ids, cache, index + 1, done

    done = limits <= start
    token_ids, _, _, _ = tf.while_loop(
        cond, body, (token_ids, cache, start, done),
    )
    generated = tf.logical_and(tf.logical_not(in_prompt), positions < limits[:, tf.newaxis])
    stops = tf.cast(tf.logical_and(generated, tf.equal(token_ids, stop_token_id)), tf.int32)
    before_stop = tf.equal(tf.math.cumsum(stops, axis=1), 0)
    return token_ids, tf.logical_and(generated, before_stop)


def pack_prompts(tokenizer, prompts: tf.Tensor, max_new_tokens, max_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Tokenizes prompts into a right-padded buffer for :func:`generate_tokens`.

    Each row is ``[CLS]`` plus the prompt's tokens; a prompt too long to leave room for
    ``max_new_tokens`` within ``max_length`` keeps its last tokens.

    Args:
        tokenizer: A :class:`llm_tf.text.tokenizer.TextTokenizer`.
        prompts: string [batch].
        max_new_tokens: int scalar.
        max_length: The model's ``max_sequence_length``.

    Returns:
        ``(token_ids, prompt_lengths)``: int32 [batch, longest + max_new_tokens] and int32 [batch].
    """
    pieces = tokenizer.tokenize(tf.reshape(tf.convert_to_tensor(prompts, tf.string), [-1]))
    max_new_tokens = tf.cast(max_new_tokens, tf.int32)
    room = tf.maximum(max_length - 1 - max_new_tokens, 0)
    lengths = tf.cast(pieces.row_lengths(), tf.int32)
    keep_from = tf.maximum(lengths - room, 0)
    pieces = tf.ragged.boolean_mask(pieces, _tail_mask(pieces, keep_from))
    cls = tf.fill([pieces.nrows(), 1], tf.constant(tokenizer.cls_id, tf.int32))
    rows = tf.concat([tf.RaggedTensor.from_tensor(cls), pieces], axis=1)
    prompt_lengths = tf.cast(rows.row_lengths(), tf.int32)
    width = tf.minimum(tf.reduce_max(prompt_lengths) + max_new_tokens, max_length)
    token_ids = rows.to_tensor(default_value=tokenizer.pad_id, shape=[None, None])
    token_ids = tf.pad(token_ids, [[0, 0], [0, width - tf.shape(token_ids)[1]]], constant_values=tokenizer.pad_id)
    return token_ids, prompt_lengths


def _tail_mask(pieces: tf.RaggedTensor, keep_from: tf.Tensor) -> tf.RaggedTensor:
    """True for each row's tokens at or after ``keep_from`` (its last ones)."""
    index = tf.ragged.range(pieces.row_lengths())
    return index >= tf.cast(keep_from, index.dtype)[:, tf.newaxis]


def generate(model: keras.Model, tokenizer, prompts: tf.Tensor, max_new_tokens=32, strategy="greedy",
             top_k=0, top_p=1.0, temperature=1.0, seed=0) -> tf.Tensor:
    """Continues raw prompt strings: tokenize, :func:`generate_tokens`, detokenize.

    Args:
        model: A causal LM (:func:`llm_tf.models.causal_lm.build_causal_lm`) or its backbone.
        tokenizer: The :class:`llm_tf.text.tokenizer.TextTokenizer` it was trained with.
        prompts: string [batch] (or a scalar, treated as one prompt).
        max_new_tokens: New tokens per prompt at most (>= 1).
        strategy: ``greedy``, ``top_k`` or ``top_p`` (a str, or a scalar string tensor).
        top_k: Candidates for ``top_k`` (>= 1); for ``top_p`` an optional cap (0 = none).
        top_p: Nucleus mass for ``top_p``, in (0, 1].
        temperature: Logit divisor for sampling (> 0); greedy ignores it.
        seed: Seed of the stateless sampler: the same seed gives the same text.

    Returns:
        string [batch]: each prompt's continuation only (the prompt not repeated), ended before
        ``[SEP]`` or after ``max_new_tokens`` tokens; WordPiece output is detokenized with
        spaces between words (lower-cased if the tokenizer lower-cases).

    Raises:
        ConfigError: A setting out of range (when given as a Python value).
    """
    check_generation_args(max_new_tokens, strategy, top_k, top_p, temperature)
    backbone = decoder_of(model)
    token_ids, prompt_lengths = pack_prompts(tokenizer, prompts, max_new_tokens, backbone.max_sequence_length)
    token_ids, new_tokens = generate_tokens(backbone, token_ids, prompt_lengths, max_new_tokens,
                                            stop_token_id=tokenizer.sep_id, pad_token_id=tokenizer.pad_id,
                                            strategy=strategy, top_k=top_k, top_p=top_p,
                                            temperature=temperature, seed=seed)
    return detokenize(tokenizer, tf.ragged.boolean_mask(token_ids, new_tokens))


def detokenize(tokenizer, ids: tf.RaggedTensor) -> tf.Tensor:
    """Token ids -> text, in-graph.

    WordPiece pieces are looked up in the vocabulary and joined with spaces, ``##`` pieces
    glued to the piece before (a plain vocabulary lookup, which also converts to TFLite);
    SentencePiece uses its own detokenizer.

    Args:
        tokenizer: A :class:`llm_tf.text.tokenizer.TextTokenizer`.
        ids: int [batch, (tokens)], special tokens removed (``[UNK]`` is kept as written).

    Returns:
        string [batch].
    """
    if tokenizer.kind != "wordpiece":
        return tf.reshape(tokenizer.detokenize(ids), [-1])
    words = tf.gather(tf.constant(tokenizer.vocab), ids)
    text = tf.strings.reduce_join(words, axis=-1, separator=" ")
    text = tf.strings.regex_replace(text, r" ##", "")
    return tf.strings.regex_replace(text, r"^##", "")
