"""The ``mlm_pretrain`` experiment: BERT-style masked-LM pre-training with dynamic masking.

Reads the text of any ``llm_prepare`` output (``text``/``text_pair``, or the words of a token
classification set). Masking happens in the input pipeline, anew for every batch
(tensorflow-text's ``mask_language_model``): ``task.mask_rate`` of the tokens, at most
``task.max_predictions_per_seq`` per sequence, 80% ``[MASK]``, 10% random, 10% unchanged.
The encoder's weights are exported to ``model_dir/encoder.weights.h5`` for
``task.init_checkpoint`` of a fine-tuning run.
"""

import dataclasses

import keras
import tensorflow as tf
import tensorflow_text as tft

from llm_tf.data import tfrecords
from llm_tf.errors import ConfigError
from llm_tf.models.encoder import build_encoder
from llm_tf.models.masked_lm import build_masked_lm
from llm_tf.text.alignment import IGNORE_ID
from llm_tf.training import configs, tasks
from llm_tf.training.metrics import MaskedAccuracy, masked_loss


@dataclasses.dataclass
class MaskedLMTaskConfig(configs.TaskConfig):
    """The ``mlm_pretrain`` task config: the shared fields plus the masking.

    ``mask_rate`` of the tokens are chosen for prediction, at most ``max_predictions_per_seq``
    per sequence.
    """

    mask_rate: float = 0.15
    max_predictions_per_seq: int = 20


class MaskedLMTask(tasks.Task):
    """Masked-LM pre-training over a prepared data set's text.

    Args:
        config: The experiment config.

    Raises:
        ConfigError: ``mask_rate`` outside (0, 1) or no predictions per sequence.
        DataError: The prepared data is missing.
    """

    def __init__(self, config: configs.ExperimentConfig):
        task = config.task
        if not 0 < task.mask_rate < 1:
            raise ConfigError(f"task.mask_rate must be in (0, 1), got {task.mask_rate}")
        if task.max_predictions_per_seq < 1:
            raise ConfigError(f"task.max_predictions_per_seq must be >= 1, got {task.max_predictions_per_seq}")
        super().__init__(config)
        self.text_features = [f for f in ("text", "text_pair", "tokens") if f in self.data.features]

    def build_model(self) -> keras.Model:
        """Encoder sized by ``task.model`` plus a masked-LM head tied to its embedding."""
        return build_masked_lm(build_encoder(self.config.task.model, self.data.tokenizer.vocab_size))

    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of (inputs with ``mask_positions``, original ids at those positions, -1 padded)."""
        task = self.config.task
        data = task.data
        tokenizer = self.data.tokenizer
        spec = tfrecords.feature_spec(self.text_features)
        selector = tft.RandomItemSelector(
            max_selections_per_batch=task.max_predictions_per_seq,
            selection_rate=task.mask_rate,
            unselectable_ids=[tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id],
        )
        chooser = tft.MaskValuesChooser(tokenizer.vocab_size, tokenizer.mask_id, mask_token_rate=0.8,
                                        random_token_rate=0.1)
        predictions = task.max_predictions_per_seq

        def transform(serialized):
            parsed = tf.io.parse_example(serialized, spec)
            if "tokens" in parsed:
                packed = tokenizer(tf.strings.reduce_join(parsed["tokens"], axis=-1, separator=" "),
                                   seq_length=data.seq_length)
            else:
                packed = tokenizer(parsed["text"], parsed.get("text_pair"), seq_length=data.seq_length)
            lengths = tf.reduce_sum(tf.cast(packed["padding_mask"], tf.int32), axis=1)
            ids = tf.RaggedTensor.from_tensor(packed["token_ids"], lengths=lengths)
            masked, positions, originals = tft.mask_language_model(ids, selector, chooser)
            features = {
                "token_ids": masked.to_tensor(default_value=tokenizer.pad_id, shape=[None, data.seq_length]),
                "segment_ids": packed["segment_ids"],
                "padding_mask": tf.cast(packed["padding_mask"], tf.int32),
                "mask_positions": tf.cast(positions.to_tensor(default_value=0, shape=[None, predictions]), tf.int32),
            }
            labels = tf.cast(originals.to_tensor(default_value=IGNORE_ID, shape=[None, predictions]), tf.int32)
            return features, labels

        return self.batched_inputs(split, training, skip_batches, transform)

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy averaged over the masked positions (padding predictions carry -1)."""
        return masked_loss()

    def metrics(self) -> list:
        """Masked-token accuracy."""
        return [MaskedAccuracy(name=self.metric_name)]


@tasks.register("mlm_pretrain", MaskedLMTask)
def mlm_pretrain() -> configs.ExperimentConfig:
    """Defaults for masked-LM pre-training: tiny encoder, seq 128, batch 64, lr 5e-4."""
    return configs.ExperimentConfig(
        task=MaskedLMTaskConfig(data=configs.DataConfig(seq_length=128, global_batch_size=64)),
        trainer=configs.TrainerConfig(
            train_steps=10000, steps_per_loop=1000, best_metric="accuracy",
            optimizer=configs.OptimizerConfig(learning_rate=5e-4, warmup_fraction=0.05),
        ),
    )
