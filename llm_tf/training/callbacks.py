"""Keras callbacks of the training loop: checkpoints, metrics files, throughput summaries.

Their paths may be buckets (``gs://...``): files go through ``tf.io.gfile`` and :mod:`llm_tf.io_utils`.
"""

import json
import os
import time

import keras
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.io_utils import atomic_write_json
from llm_tf.training import model_dir as model_dir_lib


class ExtraEvaluation(keras.callbacks.Callback):
    """Adds a task's extra metrics (e.g. entity F1) to the logs after each evaluation, as ``val_*``.

    Must come before the callbacks that read the logs (checkpoint saver, metrics writer).

    Args:
        extra_eval: ``model -> dict`` of metric name to value.
    """

    def __init__(self, extra_eval):
        super().__init__()
        self.extra_eval = extra_eval

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "val_loss" in logs:
            logs.update({f"val_{k}": v for k, v in self.extra_eval(self.model).items()})


#: Metric name endings for which lower values are better (all others: higher is better).
LOWER_IS_BETTER = ("loss", "perplexity")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (False for losses and perplexity)."""
    return not metric.endswith(LOWER_IS_BETTER)


class CheckpointSaver(keras.callbacks.Callback):
    """Saves the latest checkpoint after every loop, and the best one by an eval metric.

    Args:
        latest: Manager of the latest checkpoints (keeps N).
        best: Manager of the best checkpoint (keeps 1), or None.
        metric: Log key compared for "best" (e.g. ``val_accuracy``); higher is better, except
            for losses and perplexity (see :func:`higher_is_better`).
        best_file: JSON file holding the best value so far (survives restarts).
        step: Variable with the global step (the optimizer's iterations).
        best_from_step: Evaluations before this step are not candidates for the best (e.g. a
            pruned model before it reaches its target sparsity).
    """

    def __init__(self, latest: tf.train.CheckpointManager, best: tf.train.CheckpointManager | None, metric: str,
                 best_file: str, step, best_from_step: int = 0):
        super().__init__()
        self.latest = latest
        self.best = best
        self.best_from_step = best_from_step
        self.metric = metric
        self.best_file = best_file
        self.step = step
        self.best_value = None
        self.sign = 1.0 if higher_is_better(metric) else -1.0
        if io_utils.isfile(best_file):
            self.best_value = json.loads(io_utils.read_text(best_file))["value"]

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.step.numpy())
        self.latest.save(checkpoint_number=step)
        value = (logs or {}).get(self.metric) if step >= self.best_from_step else None
        if self.best is not None and value is not None and (
                self.best_value is None or self.sign * value > self.sign * self.best_value):
            self.best_value = float(value)
            path = self.best.save(checkpoint_number=step)
            atomic_write_json(self.best_file,
                              {"metric": self.metric, "value": self.best_value, "step": step, "checkpoint": path})


def learning_rate(model: keras.Model) -> float:
    """The learning rate the model's optimizer applies now (its schedule at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class MetricsWriter(keras.callbacks.Callback):
    """Writes ``metrics/step_<N>.json`` after every loop and ``metrics.json`` (the latest).

    Each record holds the loop's logs (training loss and metrics, ``val_*`` after an evaluation)
    and the ``learning_rate`` at its end: the history :mod:`llm_tf.training.curves` draws.
    """

    def __init__(self, model_dir: str, step):
        super().__init__()
        self.model_dir = model_dir
        self.step = step

    def on_epoch_end(self, epoch, logs=None):
        record = dict(logs or {})
        if "learning_rate" not in record and self.model is not None and self.model.optimizer is not None:
            record["learning_rate"] = learning_rate(self.model)
        model_dir_lib.write_metrics(self.model_dir, int(self.step.numpy()), record)


class ThroughputLogger(keras.callbacks.Callback):
    """Logs examples/s, tokens/s and the learning rate to TensorBoard after every loop.

    ``tokens_per_s`` is examples/s times ``seq_length``: the positions of full-length batches.
    With ``task.data.bucketing`` batches are shorter, so it is an upper bound there.
    """

    def __init__(self, log_dir: str, global_batch_size: int, seq_length: int, steps_per_loop: int, step):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.examples_per_loop = global_batch_size * steps_per_loop
        self.seq_length = seq_length
        self.step = step
        self.started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        examples_per_s = self.examples_per_loop / seconds
        if logs is not None:
            logs["examples_per_s"] = examples_per_s
            logs["tokens_per_s"] = examples_per_s * self.seq_length
        step = int(self.step.numpy())
        with self.writer.as_default(step=step):
            tf.summary.scalar("examples_per_s", examples_per_s)
            tf.summary.scalar("tokens_per_s", examples_per_s * self.seq_length)
            tf.summary.scalar("learning_rate", learning_rate(self.model))
        self.writer.flush()
