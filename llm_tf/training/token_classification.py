"""The ``token_classification`` experiment: a tag per word (CoNLL-2003 NER).

Words are split into sub-words in the input pipeline; each word's tag sits on its first
sub-word and the others are ignored by the loss (:mod:`llm_tf.text.alignment`). Evaluation
maps predictions back to words and scores entities with seqeval (``val_entity_f1``, the
default metric for the best checkpoint), as CoNLL does.
"""

import dataclasses

import keras
import tensorflow as tf

from llm_tf.data import tfrecords
from llm_tf.models.encoder import build_encoder
from llm_tf.models.token_tagger import build_token_tagger
from llm_tf.text.alignment import IGNORE_ID, pack_words, word_predictions
from llm_tf.training import configs, tasks
from llm_tf.training.metrics import MaskedAccuracy, masked_loss


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 (seqeval, CoNLL rules) of word tag sequences."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {
        "entity_precision": float(precision_score(gold, predicted, zero_division=0)),
        "entity_recall": float(recall_score(gold, predicted, zero_division=0)),
        "entity_f1": float(f1_score(gold, predicted, zero_division=0)),
    }


@dataclasses.dataclass
class TokenClassificationTaskConfig(configs.FineTuningTaskConfig):
    """The ``token_classification`` task config: the fine-tuning fields (head, LoRA) as they are."""


class TokenClassificationTask(tasks.Task):
    """Tags every word of a sentence, from ``llm_prepare --task=token_classification`` output.

    Args:
        config: The experiment config.

    Raises:
        DataError: The prepared data is missing or of another task.
    """

    prepared_for = "token_classification"
    per_token_labels = True

    def __init__(self, config: configs.ExperimentConfig):
        super().__init__(config)
        self.tags = self.data.labels

    def build_model(self) -> keras.Model:
        """Encoder sized by ``task.model`` plus a per-token head."""
        encoder = build_encoder(self.config.task.model, self.data.tokenizer.vocab_size)
        return build_token_tagger(encoder, len(self.tags), self.config.task.head_dropout)

    def _pack(self, parsed: dict, table) -> dict:
        tag_ids = parsed["tags"].with_flat_values(table.lookup(parsed["tags"].flat_values))
        packed = pack_words(self.data.tokenizer, parsed["tokens"], tag_ids, self.config.task.data.seq_length)
        packed["padding_mask"] = tf.cast(packed["padding_mask"], tf.int32)
        return packed

    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of (model inputs, sub-word label ids with -1 where not scored)."""
        table = tasks.label_table(self.tags)
        spec = tfrecords.feature_spec(["tokens", "tags"])

        def transform(serialized):
            packed = self._pack(tf.io.parse_example(serialized, spec), table)
            features = {k: packed[k] for k in ("token_ids", "segment_ids", "padding_mask")}
            return features, packed["label_ids"]

        return self.batched_inputs(split, training, skip_batches, transform)

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy averaged over first sub-words (others carry -1 and are ignored)."""
        return masked_loss()

    def metrics(self) -> list:
        """Tag accuracy over scored positions."""
        return [MaskedAccuracy(name=self.metric_name)]

    def extra_eval(self, model: keras.Model) -> dict:
        """Entity precision/recall/F1 over the eval split, at word level (seqeval).

        Words cut off by ``seq_length`` count as predicted ``O``, so truncation costs recall
        instead of hiding entities.
        """
        data = self.config.task.data
        table = tasks.label_table(self.tags)
        spec = tfrecords.feature_spec(["tokens", "tags"])
        dataset = tf.data.TFRecordDataset(self.data.files(data.eval_split)).batch(data.eval_batch_size)
        outside = self.tags.index("O") if "O" in self.tags else 0
        gold, predicted = [], []

        @tf.function
        def predict(serialized):
            parsed = tf.io.parse_example(serialized, spec)
            packed = self._pack(parsed, table)
            features = {k: packed[k] for k in ("token_ids", "segment_ids", "padding_mask")}
            logits = model(features, training=False)
            num_words = tf.cast(tf.reduce_max(parsed["tokens"].row_lengths()), tf.int32)
            words = word_predictions(tf.argmax(logits, axis=-1), packed["first_piece_mask"], num_words)
            return words, parsed["tags"]

        for words, tags in dataset.map(predict):
            for row, sentence_tags in zip(words.numpy(), tags.to_list()):
                gold.append([t.decode("utf-8") for t in sentence_tags])
                ids = [int(i) if i != IGNORE_ID else outside for i in row[: len(sentence_tags)]]
                predicted.append([self.tags[i] for i in ids])
        return entity_scores(gold, predicted)


@tasks.register("token_classification", TokenClassificationTask)
def token_classification() -> configs.ExperimentConfig:
    """Defaults for NER: tiny encoder, seq 128, batch 32, best checkpoint by entity F1."""
    return configs.ExperimentConfig(
        task=TokenClassificationTaskConfig(data=configs.DataConfig(seq_length=128, global_batch_size=32)),
        trainer=configs.TrainerConfig(train_steps=2000, steps_per_loop=200, best_metric="entity_f1"),
    )


