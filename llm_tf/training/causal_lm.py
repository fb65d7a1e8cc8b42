"""The ``causal_lm`` experiment: decoder-only (GPT-style) pre-training by next-token prediction.

Reads the text of any ``llm_prepare`` output, like ``mlm_pretrain`` (``text``/``text_pair``,
or the words of a token classification set; ``llm_prepare --task=text`` for plain text).
Every example is packed as ``[CLS] tokens [SEP]`` to ``seq_length + 1`` positions; the model
reads the first ``seq_length`` and predicts the last ``seq_length`` (the same ids shifted by
one), so ``[CLS]`` acts as the start token and ``[SEP]`` as the end token that generation
stops at. Labels at padding are -1 and ignored by the loss and the metrics.

The model is a keras-hub ``GPT2Backbone`` (causal self-attention) sized by ``task.model.size``
with the output projection tied to the token embedding, so the exported
``encoder.weights.h5`` is the whole language model. Metrics: ``accuracy`` (next-token
accuracy over real tokens) and ``perplexity`` (exp of the mean token cross-entropy);
``--mode=eval`` reports both on the eval split (``val_perplexity``). The best checkpoint is
the one with the lowest ``val_perplexity`` (``trainer.best_metric``).
"""

import dataclasses
import os

import keras
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data import tfrecords
from llm_tf.errors import ConfigError, DataError
from llm_tf.models import generation
from llm_tf.models.causal_lm import build_causal_lm, build_decoder
from llm_tf.text.alignment import IGNORE_ID
from llm_tf.training import configs, encoder_weights, tasks
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training.metrics import MaskedAccuracy, masked_loss


class MaskedPerplexity(keras.metrics.Metric):
    """Perplexity, ``exp(mean cross-entropy)``, over positions whose label is not -1.

    Accumulates the summed negative log-likelihood and the token count over all batches, so
    the result is the perplexity of the whole evaluated text (not a mean of batch values).

    Args:
        name: Metric name.
    """

    def __init__(self, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.nll = self.add_variable(shape=(), initializer="zeros", name="nll")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch: ``y_true`` int [batch, seq] (-1 = unscored), ``y_pred`` logits [batch, seq, vocab]."""
        y_true = keras.ops.cast(y_true, "int32")
        mask = y_true != IGNORE_ID
        nll = keras.losses.sparse_categorical_crossentropy(
            keras.ops.where(mask, y_true, 0), keras.ops.cast(y_pred, "float32"), from_logits=True)
        mask = keras.ops.cast(mask, "float32")
        self.nll.assign_add(keras.ops.sum(nll * mask))
        self.count.assign_add(keras.ops.sum(mask))

    def result(self):
        """``exp(total NLL / tokens)`` (1 before any token)."""
        return keras.ops.exp(self.nll / keras.ops.maximum(self.count, 1.0))

    def reset_state(self):
        """Forgets all batches."""
        self.nll.assign(0.0)
        self.count.assign(0.0)


@dataclasses.dataclass
class CausalLMTaskConfig(configs.TaskConfig):
    """The ``causal_lm`` task config: the shared fields plus ``generation``, the text generation defaults."""

    generation: configs.GenerationConfig = dataclasses.field(default_factory=configs.GenerationConfig)


class CausalLMTask(tasks.Task):
    """Next-token-prediction pre-training over a prepared data set's text.

    Args:
        config: The experiment config.

    Raises:
        ConfigError: ``seq_length`` beyond the model's positions, or invalid
            ``task.generation`` settings.
        DataError: The prepared data is missing or has no text.
    """

    per_token_labels = True

    def __init__(self, config: configs.ExperimentConfig):
        task = config.task
        if task.data.seq_length < 2:
            raise ConfigError(f"task.data.seq_length must be >= 2 for a causal LM, got {task.data.seq_length}")
        if task.data.seq_length > task.model.max_sequence_length:
            raise ConfigError(
                f"task.data.seq_length ({task.data.seq_length}) exceeds task.model.max_sequence_length "
                f"({task.model.max_sequence_length}), the positions the decoder has")
        gen = task.generation
        generation.check_generation_args(gen.max_new_tokens, gen.strategy, gen.top_k, gen.top_p, gen.temperature,
                                         prefix="task.generation.")
        super().__init__(config)
        self.text_features = [f for f in ("text", "text_pair", "tokens") if f in self.data.features]
        if not self.text_features:
            raise DataError(f"{task.data.prepared_dir}: no text features to train a language model on")

    def build_model(self) -> keras.Model:
        """GPT-2-style decoder sized by ``task.model`` with the weight-tied LM head."""
        return build_causal_lm(build_decoder(self.config.task.model, self.data.tokenizer.vocab_size))

    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of ({``token_ids``, ``padding_mask``} [batch, seq], next ids [batch, seq], -1 at padding)."""
        data = self.config.task.data
        tokenizer = self.data.tokenizer
        spec = tfrecords.feature_spec(self.text_features)

        def transform(serialized):
            parsed = tf.io.parse_example(serialized, spec)
            if "tokens" in parsed:
                texts = tf.strings.reduce_join(parsed["tokens"], axis=-1, separator=" ")
                packed = tokenizer(texts, seq_length=data.seq_length + 1)
            else:
                packed = tokenizer(parsed["text"], parsed.get("text_pair"), seq_length=data.seq_length + 1)
            ids = packed["token_ids"]
            real = tf.cast(packed["padding_mask"], tf.bool)
            features = {"token_ids": ids[:, :-1], "padding_mask": tf.cast(real[:, :-1], tf.int32)}
            labels = tf.where(real[:, 1:], ids[:, 1:], IGNORE_ID)
            return features, labels

        return self.batched_inputs(split, training, skip_batches, transform)

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy averaged over the real next tokens (padding labels are -1)."""
        return masked_loss()

    def metrics(self) -> list:
        """Next-token accuracy and perplexity."""
        return [MaskedAccuracy(name=self.metric_name), MaskedPerplexity(name="perplexity")]

    def generate(self, model: keras.Model, prompts, **overrides) -> tf.Tensor:
        """Continues prompts with ``task.generation``'s settings (keyword arguments override them).

        Args:
            model: The task's model (trained).
            prompts: string [batch].
            **overrides: Any of :func:`llm_tf.models.generation.generate`'s settings.

        Returns:
            string [batch]: the continuations.

        Raises:
            ConfigError: A setting out of range.
        """
        settings = self.config.task.generation.as_dict()
        settings.update(overrides)
        return generation.generate(model, self.data.tokenizer, tf.convert_to_tensor(prompts, tf.string), **settings)


def load_trained(model_dir: str, prepared_dir: str = "") -> tuple[CausalLMTask, keras.Model]:
    """Rebuilds a trained causal LM from its ``model_dir`` for evaluation or generation.

    Reads ``params.yaml``, builds the model and loads ``encoder.weights.h5`` (the whole LM:
    the head is tied to the embedding), or else the latest checkpoint.

    Args:
        model_dir: The ``--model_dir`` of an ``llm_train --experiment=causal_lm`` run.
        prepared_dir: Overrides ``task.data.prepared_dir`` (where the tokenizer is).

    Returns:
        ``(task, model)``.

    Raises:
        ConfigError: ``model_dir`` holds no causal LM run.
        DataError: Neither weights nor a checkpoint are there.
    """
    try:
        config = model_dir_lib.load_config(model_dir, prepared_dir or None)
    except DataError as e:
        raise ConfigError(str(e)) from None
    if config.experiment != "causal_lm":
        raise ConfigError(f"{model_dir}: experiment '{config.experiment}' is not causal_lm")
    task = tasks.build_task(config)
    model = task.build_model()
    weights = os.path.join(model_dir, model_dir_lib.ENCODER_WEIGHTS_FILE)
    if io_utils.isfile(weights):
        with encoder_weights.local_weights_file(weights) as local:
            model.get_layer("encoder").load_weights(local)
        return task, model
    latest = model_dir_lib.latest_checkpoint(model_dir)
    if not latest:
        raise DataError(f"{model_dir}: no {model_dir_lib.ENCODER_WEIGHTS_FILE} and no checkpoint")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return task, model


@tasks.register("causal_lm", CausalLMTask)
def causal_lm() -> configs.ExperimentConfig:
    """Defaults for causal-LM pre-training: tiny decoder, seq 128, batch 32, lr 5e-4."""
    return configs.ExperimentConfig(
        task=CausalLMTaskConfig(data=configs.DataConfig(seq_length=128, global_batch_size=32)),
        trainer=configs.TrainerConfig(
            train_steps=10000, steps_per_loop=1000, best_metric="perplexity",
            optimizer=configs.OptimizerConfig(learning_rate=5e-4, warmup_fraction=0.05),
        ),
    )
