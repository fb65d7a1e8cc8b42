"""The training loop behind ``llm_train``: strategy scope, compile, fit, checkpoints, eval.

What ``model_dir`` holds is :mod:`llm_tf.training.model_dir`'s to say (it names every file); the
chief draws the training curves there at the end of a run (:func:`draw_training_curves`).
A run restarted with the same command (after a crash or ``kill -9``) restores the latest
checkpoint and goes on from its step, with the input pipeline at the same position.
"""

import os
import shutil
import sys
import tempfile

import keras
import tensorflow as tf
from absl import logging

from llm_tf.errors import ConfigError, DataError
from llm_tf.models.parameters import count_params
from llm_tf.training import callbacks as callbacks_lib
from llm_tf.training import configs, curves, encoder_weights, init_preset, multi_worker, strategies, tasks
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training.adversarial import FGMModel
from llm_tf.training.optimizers import build_optimizer, global_step
from llm_tf.training.pruning import PruningReport, build_pruning

MODES = ("train", "eval", "train_and_eval", "continuous_eval")


def _check(config: configs.ExperimentConfig, mode: str) -> None:
    trainer = config.trainer
    if mode not in MODES:
        raise ConfigError(f"unknown mode '{mode}' (expected one of: {', '.join(MODES)})")
    if trainer.train_steps < 1 or trainer.steps_per_loop < 1:
        raise ConfigError("trainer.train_steps and trainer.steps_per_loop must be >= 1")
    if trainer.train_steps % trainer.steps_per_loop:
        raise ConfigError(
            f"trainer.train_steps ({trainer.train_steps}) must be a multiple of trainer.steps_per_loop "
            f"({trainer.steps_per_loop}): checkpoints and evaluations happen at loop ends"
        )
    if trainer.steps_per_execution < 0 or (trainer.steps_per_execution
                                           and trainer.steps_per_loop % trainer.steps_per_execution):
        raise ConfigError(
            f"trainer.steps_per_execution ({trainer.steps_per_execution}) must divide trainer.steps_per_loop "
            f"({trainer.steps_per_loop}), or be 0 to pick one"
        )
    if trainer.steps_per_execution > 1 and config.runtime.strategy != "one_device":
        raise ConfigError(
            f"trainer.steps_per_execution > 1 runs with the one_device strategy only, not {config.runtime.strategy} "
            "(TensorFlow fails to run a replicated step's collectives inside the multi-step loop); use 0 or 1"
        )
    if trainer.mixed_precision not in ("", "float32", "mixed_bfloat16", "mixed_float16"):
        raise ConfigError(f"unknown mixed_precision '{trainer.mixed_precision}' "
                          "(expected mixed_bfloat16, mixed_float16 or '')")


def steps_per_execution(config: configs.ExperimentConfig) -> int:
    """Training steps per graph call: ``trainer.steps_per_execution``, or for 0 with the
    ``one_device`` strategy the largest of 16, 8, 4, 2, 1 that divides ``steps_per_loop`` (Keras
    would run past a loop's end otherwise), and 1 with the other strategies.

    Example:
        >>> steps_per_execution(configs.ExperimentConfig(trainer=configs.TrainerConfig(steps_per_loop=500)))
        4
    """
    trainer = config.trainer
    if trainer.steps_per_execution:
        return trainer.steps_per_execution
    if config.runtime.strategy != "one_device":
        return 1
    return next(n for n in (16, 8, 4, 2, 1) if trainer.steps_per_loop % n == 0)


class Trainer:
    """Builds the task, model and optimizer in the strategy's scope, with checkpoint managers.

    Args:
        config: The resolved experiment config.
        model_dir: Where checkpoints, metrics and summaries go.
        strategy: The distribution strategy (see :func:`strategies.make_strategy`).
    """

    def __init__(self, config: configs.ExperimentConfig, model_dir: str, strategy: tf.distribute.Strategy):
        self.config = config
        self.model_dir = model_dir
        self.strategy = strategy
        trainer = config.trainer
        keras.mixed_precision.set_global_policy(trainer.mixed_precision or "float32")
        keras.utils.set_random_seed(config.task.data.seed)
        # Only the chief writes where users look; other workers write to a scratch directory.
        # Every worker resumes from model_dir's checkpoints (multi-worker: a shared directory).
        self.is_chief = strategy.extended.should_checkpoint
        root = model_dir if self.is_chief else tempfile.mkdtemp(prefix="llm_tf_worker_")
        self.root = root
        resuming = model_dir_lib.latest_checkpoint(model_dir) is not None
        self.initialized_from = None
        # Read outside the scope: the preset's backbone is only a source of weights.
        self.preset, preset_weights = init_preset.preset_weights(config, resuming)
        with strategy.scope():
            self.task = tasks.build_task(config)
            self.model = model_dir_lib.build_model(self.task)  # LoRA factors included when configured
            if config.task.init_checkpoint and not resuming:
                # A fresh run starts its encoder from the given checkpoint; a resumed one from its own.
                self.initialized_from = encoder_weights.load_init_checkpoint(self.model, config.task.init_checkpoint)
                logging.info("encoder initialised from %s", self.initialized_from)
            elif preset_weights is not None:
                self.initialized_from = init_preset.load_weights(self.model, preset_weights, self.preset)
                logging.info("encoder initialised from preset %s", self.initialized_from)
            elif not resuming:
                # A task's own start (distillation: the student from the teacher's layers).
                self.initialized_from = self.task.initialize_model(self.model)
                if self.initialized_from:
                    logging.info("model initialised from %s", self.initialized_from)
            # Training-only structure around the task's model (distillation: the frozen teacher,
            # hidden-state projections); its checkpoints still restore into build_model()'s model.
            self.model = self.task.training_model(self.model)
            if trainer.fgm_epsilon:
                if trainer.fgm_epsilon < 0:
                    raise ConfigError(f"trainer.fgm_epsilon must be >= 0, got {trainer.fgm_epsilon}")
                self.model = FGMModel(self.model.input, self.model.output, trainer.fgm_epsilon, name=self.model.name)
                self.model.embedding_index()  # fails now, not mid-training, when the embedding is frozen
            if multi_worker.in_multi_worker_mode(strategy):
                multi_worker.adapt(self.model)  # Keras 3 fit/evaluate workarounds, see multi_worker.py
            self.trainable_params, self.total_params = parameter_counts(self.model)
            logging.info("parameters: %s trainable of %s (%.2f%%)", f"{self.trainable_params:,}",
                         f"{self.total_params:,}", 100 * self.trainable_params / self.total_params)
            self.optimizer = build_optimizer(trainer.optimizer, trainer.train_steps)
            self.global_step = global_step(self.optimizer)
            self.model.compile(optimizer=self.optimizer, loss=self.task.loss(), metrics=self.task.metrics(),
                               jit_compile=trainer.jit_compile, steps_per_execution=steps_per_execution(config))
            self.optimizer.build(self.model.trainable_variables)
            # Pruning masks go into the checkpoint beside the model, so export never sees them.
            self.pruning = build_pruning(config, self.model, self.optimizer, self.global_step)
            masks = {"pruning": self.pruning.masks} if self.pruning else {}
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, **masks)
        self.latest = tf.train.CheckpointManager(self.checkpoint, model_dir_lib.checkpoints_dir(root),
                                                 max_to_keep=trainer.max_to_keep, step_counter=self.global_step)
        self.best = tf.train.CheckpointManager(self.checkpoint, model_dir_lib.best_dir(root), max_to_keep=1,
                                               step_counter=self.global_step)

    @property
    def step(self) -> int:
        """The global step: training batches so far."""
        return int(self.global_step.numpy())

    def restore(self, path: str | None = None) -> int:
        """Restores ``path`` (default: the latest checkpoint) and returns its step; 0 if none."""
        path = path or model_dir_lib.latest_checkpoint(self.model_dir)
        if not path:
            return 0
        self.checkpoint.restore(path).expect_partial()
        logging.info("restored %s at step %d", path, self.step)
        return self.step

    def _eval_dataset(self):
        data = self.config.task.data
        try:
            self.task.data.files(data.eval_split)
        except DataError:
            return None
        return self.task.build_inputs(data.eval_split, training=False)

    def train(self, evaluate: bool) -> dict:
        """Trains to ``trainer.train_steps`` from the latest checkpoint; returns the last metrics."""
        trainer = self.config.trainer
        data = self.config.task.data
        start = self.restore()
        if start >= trainer.train_steps:
            logging.info("already trained to step %d (train_steps=%d)", start, trainer.train_steps)
            return self.evaluate() if evaluate else {"step": start}
        eval_dataset = self._eval_dataset() if evaluate else None
        callbacks = [
            callbacks_lib.ExtraEvaluation(self.task.extra_eval),
            callbacks_lib.ThroughputLogger(os.path.join(self.root, model_dir_lib.LOGS_DIR), data.global_batch_size,
                                           data.seq_length, trainer.steps_per_loop, self.global_step),
            callbacks_lib.CheckpointSaver(self.latest, self.best if eval_dataset is not None else None,
                                          f"val_{trainer.best_metric}",
                                          os.path.join(model_dir_lib.best_dir(self.root), model_dir_lib.BEST_INFO_FILE),
                                          self.global_step,
                                          # a pruned model's best is chosen at its target sparsity
                                          best_from_step=self.pruning.schedule.end_step if self.pruning else 0),
            keras.callbacks.TensorBoard(os.path.join(self.root, model_dir_lib.LOGS_DIR), write_graph=False),
        ]
        if self.pruning:
            callbacks.insert(1, PruningReport(self.pruning, self.model_dir if self.is_chief else None, self.global_step,
                                              self.total_params))
        if self.is_chief:
            callbacks.append(callbacks_lib.MetricsWriter(self.model_dir, self.global_step))
        if trainer.early_stopping_patience and eval_dataset is not None:
            higher = callbacks_lib.higher_is_better(trainer.best_metric)
            callbacks.append(keras.callbacks.EarlyStopping(monitor=f"val_{trainer.best_metric}",
                                                           mode="max" if higher else "min",
                                                           patience=trainer.early_stopping_patience))
        history = self.model.fit(
            self.task.build_inputs(data.train_split, training=True, skip_batches=start),
            epochs=trainer.train_steps // trainer.steps_per_loop,
            initial_epoch=start // trainer.steps_per_loop,
            steps_per_epoch=trainer.steps_per_loop,
            validation_data=eval_dataset,
            validation_steps=trainer.eval_steps or None,
            callbacks=callbacks,
            shuffle=False,  # the input pipeline shuffles, with the config's seed
            verbose=1 if sys.stdout.isatty() else 2,
        )
        if self.is_chief:
            encoder_weights.export_encoder(self.model, self.model_dir)
        else:
            shutil.rmtree(self.root, ignore_errors=True)  # the scratch copies of the chief's checkpoints
        last = {k: float(v[-1]) for k, v in history.history.items()}
        return {"step": self.step, **last, **self.parameter_report()}

    def parameter_report(self) -> dict:
        """Trainable and total parameter counts, and the trainable share (plus the task's, e.g. the teacher's)."""
        task_report = self.task.parameter_report()
        return {"trainable_params": self.trainable_params, "total_params": self.total_params,
                "trainable_fraction": self.trainable_params / self.total_params, **task_report}

    def evaluate(self) -> dict:
        """Evaluates the current weights on the eval split and writes ``metrics.json``."""
        dataset = self._eval_dataset()
        if dataset is None:
            data = self.config.task.data
            raise DataError(f"{data.prepared_dir}: no '{data.eval_split}' split to evaluate")
        results = self.model.evaluate(dataset, steps=self.config.trainer.eval_steps or None, return_dict=True,
                                      verbose=1 if sys.stdout.isatty() else 2)
        results.update(self.task.extra_eval(self.model))
        logs = {f"val_{k}": v for k, v in results.items()}
        if self.is_chief:
            return model_dir_lib.write_metrics(self.model_dir, self.step, logs)
        return {"step": self.step, **logs}


def run_experiment(config: configs.ExperimentConfig, mode: str, model_dir: str, eval_timeout: float = 600) -> dict:
    """Runs an experiment in one of :data:`MODES`; returns the final metrics.

    Args:
        config: The resolved experiment config (see ``configs.apply_overrides``).
        mode: ``train``, ``eval`` (latest checkpoint), ``train_and_eval`` or ``continuous_eval``
            (evaluate each new checkpoint until the last step, or ``eval_timeout`` seconds
            without a new one).
        model_dir: Output directory (created).
        eval_timeout: Seconds ``continuous_eval`` waits for a new checkpoint.

    Raises:
        ConfigError: Invalid config, mode or strategy.
        DataError: Missing or unsuitable prepared data, or nothing to evaluate.
    """
    _check(config, mode)
    runtime = config.runtime
    strategy = strategies.make_strategy(runtime.strategy, runtime.num_devices, runtime.tpu, runtime.all_reduce_alg)
    if config.task.init_preset:
        init_preset.resolve(config)  # params.yaml then records the preset's dimensions
    tasks.task_class(config.experiment).resolve_config(config)  # e.g. a student's dimensions from its teacher
    if strategy.extended.should_checkpoint:
        model_dir_lib.save_params(config, model_dir)
    trainer = Trainer(config, model_dir, strategy)
    result = _run_mode(trainer, mode, eval_timeout)
    if trainer.is_chief:
        draw_training_curves(model_dir, f"val_{config.trainer.best_metric}")
    return result


def _run_mode(trainer: Trainer, mode: str, eval_timeout: float) -> dict:
    if mode in ("train", "train_and_eval"):
        return trainer.train(evaluate=mode == "train_and_eval")
    if mode == "eval":
        if not trainer.restore():
            raise DataError(f"{trainer.model_dir}: no checkpoint to evaluate")
        return trainer.evaluate()
    result: dict = {}
    for path in tf.train.checkpoints_iterator(model_dir_lib.checkpoints_dir(trainer.model_dir), timeout=eval_timeout):
        trainer.restore(path)
        result = trainer.evaluate()
        if trainer.step >= trainer.config.trainer.train_steps:
            break
    if not result:
        raise DataError(f"{trainer.model_dir}: no checkpoint appeared within {eval_timeout:g}s")
    return result


def draw_training_curves(model_dir: str, metric: str) -> str | None:
    """Draws ``model_dir``'s training curves (:mod:`llm_tf.training.curves`); returns the PNG's path.

    A picture never fails a finished run: a failure to draw is logged as a warning (None returned).
    """
    try:
        path = curves.write_training_curves(model_dir, metric)
    except Exception as e:  # the checkpoints and metrics are written: only the picture is lost
        logging.warning("training curves not drawn: %s: %s", type(e).__name__, e)
        return None
    if path:
        logging.info("training curves (loss, eval metric, learning rate): %s in the model_dir", os.path.basename(path))
    return path


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, total) parameter counts of a model (LoRA factors included in both)."""
    return count_params(model.trainable_weights), count_params(model.weights)


