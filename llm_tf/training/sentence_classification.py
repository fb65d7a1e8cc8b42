"""The ``sentence_classification`` experiment: single texts or pairs to one label (SST-2, IMDB)."""

import dataclasses

import keras
import tensorflow as tf

from llm_tf.data import tfrecords
from llm_tf.errors import DataError
from llm_tf.models.classifier import build_classifier
from llm_tf.models.encoder import build_encoder
from llm_tf.training import configs, tasks


@dataclasses.dataclass
class SentenceClassificationTaskConfig(configs.FineTuningTaskConfig):
    """The ``sentence_classification`` task config: the fine-tuning fields (head, LoRA) as they are."""


class SentenceClassificationTask(tasks.Task):
    """Single-text or text-pair classification (SST-2, IMDB) from ``llm_prepare`` output.

    Args:
        config: The experiment config; ``task.data.prepared_dir`` must point at a directory
            prepared for ``classification``.

    Raises:
        DataError: The prepared data is missing, of another task, or has fewer than 2 labels.
    """

    prepared_for = "classification"
    #: Encoder layers that belong to the classification head (trainable under LoRA).
    head_layers_in_encoder = ("pooled_dense",)

    def __init__(self, config: configs.ExperimentConfig):
        super().__init__(config)
        data = config.task.data
        if len(self.data.labels) < 2:
            raise DataError(f"{data.prepared_dir}: classification needs at least 2 labels, "
                            f"found {len(self.data.labels)}")
        self.has_pair = "text_pair" in self.data.features

    @property
    def num_classes(self) -> int:
        """Number of labels."""
        return len(self.data.labels)

    def build_model(self) -> keras.Model:
        """Encoder sized by ``task.model`` plus a classification head."""
        encoder = build_encoder(self.config.task.model, self.data.tokenizer.vocab_size)
        return build_classifier(encoder, self.num_classes, self.config.task.head_dropout)

    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of (model inputs, label ids), tokenized in the graph.

        Training data is shuffled with the config's seed and repeated; ``skip_batches`` moves
        to the position a resumed run had reached, so the order is the same as without a stop.

        Args:
            split: ``train`` or ``eval`` (names from ``task.data``).
            training: Shuffle, repeat and drop the last partial batch.
            skip_batches: Batches to skip (resume).
        """
        return self.batched_inputs(split, training, skip_batches, self.example_transform())

    def example_transform(self, tokenizer=None):
        """A batch of serialized records -> (packed model inputs, label ids), in the graph.

        Args:
            tokenizer: Another ``TextTokenizer`` to pack the texts with (a distillation teacher's
                own); default: the prepared data's.
        """
        seq_length = self.config.task.data.seq_length
        tokenizer = tokenizer or self.data.tokenizer
        table = tasks.label_table(self.data.labels)
        spec = tfrecords.feature_spec(["text", "label"] + (["text_pair"] if self.has_pair else []))
        has_pair = self.has_pair

        def transform(serialized):
            parsed = tf.io.parse_example(serialized, spec)
            inputs = tokenizer(parsed["text"], parsed["text_pair"] if has_pair else None, seq_length=seq_length)
            inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
            return inputs, table.lookup(parsed["label"])

        return transform

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy on logits, with ``task.label_smoothing``."""
        smoothing = self.config.task.label_smoothing
        if not smoothing:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        num_classes = self.num_classes
        categorical = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)

        def smoothed(labels, logits):
            return categorical(tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes), logits)

        return smoothed

    def metrics(self) -> list:
        """Accuracy."""
        return [keras.metrics.SparseCategoricalAccuracy(name=self.metric_name)]


@tasks.register("sentence_classification", SentenceClassificationTask)
def sentence_classification() -> configs.ExperimentConfig:
    """Defaults for sentence classification: tiny encoder, seq 128, batch 32, lr 1e-4."""
    return configs.ExperimentConfig(
        task=SentenceClassificationTaskConfig(data=configs.DataConfig(seq_length=128, global_batch_size=32)),
        trainer=configs.TrainerConfig(train_steps=2000, steps_per_loop=200, best_metric="accuracy"),
    )
