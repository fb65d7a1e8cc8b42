"""Tiny SavedModels whose ``serving_default`` follows the export contract with known answers.

No training and no weights: a test can say exactly what each model predicts, so metrics and
blessing decisions are exact numbers. ``serving_default(text: string [None])`` returns:

* :func:`save_length_classifier`: ``labels`` (``labels[1]`` for texts of more than
  ``max_words`` words, else ``labels[0]``), ``label_ids`` and ``scores``, as a classifier export;
* :func:`save_capital_tagger`: ``words`` and ``tags`` per word (``B-<tag>`` for a capitalised
  word, else ``O``), padded with "" to the longest text; with ``max_words``, words after the
  first ``max_words`` get the tag "" (as a token-classification export does for the words its
  sequence length cuts).
"""


def predicted_label(text: str, max_words: int, labels: tuple[str, str] = ("0", "1")) -> str:
    """What :func:`save_length_classifier` predicts for ``text``."""
    return labels[1] if len(text.split()) > max_words else labels[0]


def save_length_classifier(path: str, max_words: int, labels: tuple[str, str] = ("0", "1")) -> str:
    """Saves the length classifier at ``path`` (a version directory); returns ``path``."""
    import tensorflow as tf

    class LengthClassifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.names = tf.constant(list(labels))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            words = tf.strings.split(text).row_lengths()
            label_ids = tf.cast(words > max_words, tf.int64)
            scores = tf.one_hot(label_ids, 2)
            return {"labels": tf.gather(self.names, label_ids), "label_ids": label_ids, "scores": scores}

    module = LengthClassifier()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def save_capital_tagger(path: str, tag: str = "PER", max_words: int = 0) -> str:
    """Saves the capital tagger at ``path`` (``max_words`` 0: every word tagged); returns ``path``."""
    import tensorflow as tf

    class CapitalTagger(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            words = tf.strings.split(text)
            capital = tf.strings.regex_full_match(words, "[A-Z].*")
            tags = tf.ragged.map_flat_values(lambda c: tf.where(c, f"B-{tag}", "O"), capital)
            words, tags = words.to_tensor(default_value=""), tags.to_tensor(default_value="")
            if max_words:
                position = tf.range(tf.shape(tags)[1])[tf.newaxis, :]
                tags = tf.where(position < max_words, tags, "")
            return {"words": words, "tags": tags}

    module = CapitalTagger()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def save_without_serving_default(path: str) -> str:
    """Saves a SavedModel whose only signature is ``other``; returns ``path``."""
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def other(self, text):
            return {"length": tf.strings.length(text)}

    module = Other()
    tf.saved_model.save(module, path, signatures={"other": module.other})
    return path
