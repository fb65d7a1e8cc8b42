"""The serving graph: a ``tf.Module`` whose signatures take raw text (tokenizer inside).

Signatures (names are the export contract; docs/export.md describes them):

* ``serving_default``: raw strings in. Classification: ``text`` (and ``text_pair`` for
  pair tasks) -> ``scores`` [batch, classes], ``label_ids`` [batch], ``labels`` [batch].
  Token classification: ``text`` (words split on whitespace) -> ``words``, ``tags``,
  ``tag_ids`` (-1 past a sentence's end), ``scores`` (the tag's probability), all
  [batch, max words].
* ``predict_tokens``: ``token_ids``, ``segment_ids``, ``padding_mask`` (int32
  [batch, length]) -> ``logits``, ``scores``, ``label_ids`` (per position for NER), for
  callers that tokenize themselves.
* Causal LM: ``serving_default``: ``text`` (prompts) -> ``text`` (continuations) with the
  run's ``task.generation`` settings; ``generate``: ``text`` plus scalar ``max_new_tokens``,
  ``strategy`` (``greedy``/``top_k``/``top_p``), ``top_k``, ``top_p``, ``temperature``, ``seed``.
* ``classify`` (classification only): serialized ``tf.Example`` (feature ``text``, and
  ``text_pair``) -> ``classes`` [batch, classes] (label names), ``scores`` [batch, classes],
  the shape TF Serving's Classify API expects.
"""

import keras
import tensorflow as tf

from llm_tf.text.alignment import IGNORE_ID, pack_words
from llm_tf.text.tokenizer import TextTokenizer

#: Method names TF Serving checks in a SignatureDef.
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"

DEFAULT_SIGNATURE = "serving_default"
TOKENS_SIGNATURE = "predict_tokens"
CLASSIFY_SIGNATURE = "classify"
GENERATE_SIGNATURE = "generate"


def trim_to_longest(inputs: dict) -> dict:
    """Cuts packed inputs to the longest real sequence in the batch (padding costs compute)."""
    mask = tf.cast(inputs["padding_mask"], tf.int32)
    length = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
    return {
        "token_ids": inputs["token_ids"][:, :length],
        "segment_ids": inputs["segment_ids"][:, :length],
        "padding_mask": mask[:, :length],
    }


class ClassifierServing(tf.Module):
    """Serving module for a sentence classifier.

    Args:
        model: Keras model from ``token_ids``/``segment_ids``/``padding_mask`` to logits
            [batch, classes].
        tokenizer: The in-graph tokenizer used in training.
        labels: Label names in id order.
        seq_length: Packed length (the training ``seq_length``).
        has_pair: Whether the task takes text pairs.
    """

    def __init__(self, model: keras.Model, tokenizer: TextTokenizer, labels: list[str], seq_length: int,
                 has_pair: bool):
        super().__init__(name="classifier_serving")
        self.model = model
        self.tokenizer = tokenizer
        self.seq_length = seq_length
        self.has_pair = has_pair
        self.label_names = tf.constant(labels)

    def _outputs(self, inputs: dict) -> dict:
        logits = tf.cast(self.model(inputs, training=False), tf.float32)
        scores = tf.nn.softmax(logits, axis=-1)
        label_ids = tf.argmax(logits, axis=-1)
        return {"logits": logits, "scores": scores, "label_ids": label_ids,
                "labels": tf.gather(self.label_names, label_ids)}

    def classify_texts(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict:
        """Raw strings -> logits, scores, label ids and names."""
        return self._outputs(trim_to_longest(self.tokenizer(text, text_pair, seq_length=self.seq_length)))

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        text_spec = tf.TensorSpec([None], tf.string, name="text")

        def public(outputs: dict) -> dict:
            return {k: outputs[k] for k in ("scores", "label_ids", "labels")}

        if self.has_pair:
            serve = tf.function(lambda text, text_pair: public(self.classify_texts(text, text_pair)))
            serving_default = serve.get_concrete_function(text_spec, tf.TensorSpec([None], tf.string, name="text_pair"))
        else:
            serve = tf.function(lambda text: public(self.classify_texts(text)))
            serving_default = serve.get_concrete_function(text_spec)

        features = {"text": tf.io.FixedLenFeature([], tf.string)}
        if self.has_pair:
            features["text_pair"] = tf.io.FixedLenFeature([], tf.string)

        def classify(inputs):
            parsed = tf.io.parse_example(inputs, features)
            out = self.classify_texts(parsed["text"], parsed.get("text_pair"))
            classes = tf.tile(self.label_names[tf.newaxis, :], [tf.shape(inputs)[0], 1])
            return {"classes": classes, "scores": out["scores"]}

        return {
            DEFAULT_SIGNATURE: serving_default,
            TOKENS_SIGNATURE: self.tokens_function().get_concrete_function(),
            CLASSIFY_SIGNATURE: tf.function(classify).get_concrete_function(
                tf.TensorSpec([None], tf.string, name="inputs")),
        }

    def tokens_function(self) -> tf.types.experimental.PolymorphicFunction:
        """Packed token tensors -> ``logits``, ``scores``, ``label_ids`` (what ``predict_tokens`` runs), untraced."""

        def tokens(token_ids, segment_ids, padding_mask):
            out = self._outputs({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
            return {k: out[k] for k in ("logits", "scores", "label_ids")}

        return tf.function(tokens, input_signature=_token_specs())


class TaggerServing(tf.Module):
    """Serving module for a token classifier (NER): whitespace-split words in, a tag per word out.

    Args:
        model: Keras model from the packed inputs to logits [batch, length, tags].
        tokenizer: The in-graph tokenizer used in training.
        tags: Tag names in id order.
        seq_length: Packed length; words beyond it get no tag (``tag_ids`` -1, ``tags`` "").
    """

    def __init__(self, model: keras.Model, tokenizer: TextTokenizer, tags: list[str], seq_length: int):
        super().__init__(name="tagger_serving")
        self.model = model
        self.tokenizer = tokenizer
        self.seq_length = seq_length
        self.tag_names = tf.constant(tags)

    def tag_texts(self, text: tf.Tensor) -> dict:
        """Raw strings -> words, tags, tag ids and the tags' probabilities, per word."""
        words = tf.strings.split(text)
        packed = pack_words(self.tokenizer, words, seq_length=self.seq_length)
        inputs = trim_to_longest(packed)
        length = tf.shape(inputs["token_ids"])[1]
        probabilities = tf.nn.softmax(tf.cast(self.model(inputs, training=False), tf.float32), axis=-1)
        first = packed["first_piece_mask"][:, :length]
        piece_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        piece_scores = tf.reduce_max(probabilities, axis=-1)
        width = tf.stack([tf.cast(words.nrows(), tf.int64), tf.cast(tf.reduce_max(words.row_lengths()), tf.int64)])
        # Words beyond seq_length have no first piece: they come out padded (-1 / 0 / "").
        tag_ids = tf.ragged.boolean_mask(piece_ids, first).to_tensor(default_value=IGNORE_ID, shape=width)
        scores = tf.ragged.boolean_mask(piece_scores, first).to_tensor(default_value=0.0, shape=width)
        tags = tf.where(tag_ids >= 0, tf.gather(self.tag_names, tf.maximum(tag_ids, 0)), "")
        return {"words": words.to_tensor(default_value="", shape=width), "tags": tags,
                "tag_ids": tf.cast(tag_ids, tf.int64), "scores": scores}

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""

        def tokens(token_ids, segment_ids, padding_mask):
            logits = tf.cast(self.model({"token_ids": token_ids, "segment_ids": segment_ids,
                                         "padding_mask": padding_mask},
                                        training=False), tf.float32)
            return {"logits": logits, "scores": tf.nn.softmax(logits, axis=-1), "label_ids": tf.argmax(logits, axis=-1)}

        return {
            DEFAULT_SIGNATURE: tf.function(self.tag_texts).get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text")),
            TOKENS_SIGNATURE: tf.function(tokens).get_concrete_function(*_token_specs()),
        }


def _token_specs() -> list[tf.TensorSpec]:
    return [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("token_ids", "segment_ids", "padding_mask")]


class GeneratorServing(tf.Module):
    """Serving module for a causal LM: prompts in, continuations out (decoding in the graph).

    Args:
        model: The causal LM (``llm_tf.models.causal_lm.build_causal_lm``).
        tokenizer: The tokenizer it was trained with.
        defaults: The run's ``task.generation`` config (used by ``serving_default``).
    """

    def __init__(self, model: keras.Model, tokenizer: TextTokenizer, defaults):
        super().__init__(name="generator_serving")
        self.model = model
        self.tokenizer = tokenizer
        self.defaults = defaults.as_dict()

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        from llm_tf.models import generation

        def generate(text, max_new_tokens, strategy, top_k, top_p, temperature, seed):
            return {"text": generation.generate(self.model, self.tokenizer, text, max_new_tokens, strategy, top_k,
                                                top_p, temperature, seed)}

        d = self.defaults

        def serve(text):
            return generate(text, d["max_new_tokens"], d["strategy"], d["top_k"], d["top_p"], d["temperature"],
                            d["seed"])

        scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)  # noqa: E731
        return {
            DEFAULT_SIGNATURE: tf.function(serve).get_concrete_function(tf.TensorSpec([None], tf.string, name="text")),
            GENERATE_SIGNATURE: tf.function(generate).get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text"), scalar(tf.int32, "max_new_tokens"),
                scalar(tf.string, "strategy"), scalar(tf.int32, "top_k"), scalar(tf.float32, "top_p"),
                scalar(tf.float32, "temperature"), scalar(tf.int32, "seed")),
        }
