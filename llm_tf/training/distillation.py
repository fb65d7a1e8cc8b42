"""The ``distillation`` experiment: a small sentence classifier learns from a frozen teacher.

The student is a sentence classifier sized by ``task.model`` on ``task.data``; the teacher
(``task.distillation.teacher_dir``) is a trained classifier run or its exported SavedModel.
Each step minimises (see ``llm_tf.training.distillation_loss``)::

    alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels, student)
        + hidden_weight * mean_k MSE(P_k(student layer s_k), teacher layer t_k)

with ``alpha`` and ``T`` constant or moving (``schedule``: linear/cosine) to ``alpha_end``
and ``temperature_end`` over ``trainer.train_steps``. The hidden term (``hidden_weight`` > 0)
compares real (non-padding) positions of ``student_layers`` with ``teacher_layers``
(pairwise; -1 is the last layer) through learned projections ``P_k`` to the teacher's width
(identity when the widths agree). The teacher runs frozen in inference mode inside the step,
or its logits come with the examples from ``teacher_logits_dir`` (written once by
``llm_train --mode=precompute_teacher_logits``; see ``llm_tf.training.teacher_logits``).

Training reports ``kl_to_teacher`` (KL at T=1) and, with hidden matching, ``hidden_mse``. The
training model shares the student's layers and graph, so checkpoints restore into the plain
student (``llm_export`` exports it like a sentence classifier); the teacher is not saved in
them and the projections are training-only.
"""

import dataclasses

import keras
import tensorflow as tf
from absl import logging
from official.modeling.hyperparams import base_config

from llm_tf import compat, io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.models import student_init
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.models.hidden_states import classifier_with_hidden_states, resolve_layers
from llm_tf.models.parameters import count_params
from llm_tf.text.tokenizer import load_vocab
from llm_tf.training import configs, distillation_loss, tasks, teacher_logits
from llm_tf.training import teacher as teacher_lib
from llm_tf.training.model_dir import find_checkpoint
from llm_tf.training.optimizers import global_step
from llm_tf.training.sentence_classification import SentenceClassificationTask

#: The config field naming the teacher layers a fresh student starts from.
FIELD_INIT = "task.distillation.student_init_layers"


@dataclasses.dataclass
class DistillationConfig(base_config.Config):
    """How the student learns from the teacher (see the module docstring for the loss).

    ``teacher_dir`` is the teacher's training ``model_dir`` (``teacher_checkpoint``: best,
    latest or a prefix) or an exported SavedModel version directory. ``alpha_end`` and
    ``temperature_end`` (None: the start value) are reached at ``trainer.train_steps`` when
    ``schedule`` is ``linear`` or ``cosine``. ``teacher_logits_dir`` reads precomputed logits
    instead of running the teacher (not with hidden matching, which needs the teacher's hidden
    states). ``student_init_layers`` (teacher layers; -1 is the last) starts a fresh student
    from the teacher's own weights (:mod:`llm_tf.models.student_init`): one student layer per
    listed teacher layer, the teacher's widths (``task.model.intermediate_dim`` may be smaller:
    each layer keeps the teacher's most important feed-forward units), the teacher's embedding
    rows of the student's vocabulary (which may be a cut of the teacher's, ``llm_prepare
    --vocab_cut``), its pooler and head; empty: a randomly initialised student sized by
    ``task.model``.
    """

    teacher_dir: str = ""
    teacher_checkpoint: str = "best"
    teacher_logits_dir: str = ""
    alpha: float = 0.5
    alpha_end: float | None = None
    temperature: float = 2.0
    temperature_end: float | None = None
    schedule: str = "constant"
    hidden_weight: float = 0.0
    student_layers: list[int] = dataclasses.field(default_factory=lambda: [-1])
    teacher_layers: list[int] = dataclasses.field(default_factory=lambda: [-1])
    student_init_layers: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DistillationTaskConfig(configs.FineTuningTaskConfig):
    """A sentence-classification task config plus ``distillation``."""

    distillation: DistillationConfig = dataclasses.field(default_factory=DistillationConfig)


def validate_settings(settings: DistillationConfig) -> None:
    """Checks the distillation settings that need no files.

    Raises:
        ConfigError: alpha (or alpha_end) outside [0, 1], a temperature <= 0, an unknown
            schedule, a negative hidden weight, or layer lists of different lengths.
    """
    for name in ("alpha", "alpha_end"):
        value = getattr(settings, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"task.distillation.{name} must be in [0, 1], got {value}")
    for name in ("temperature", "temperature_end"):
        value = getattr(settings, name)
        if value is not None and not value > 0:
            raise ConfigError(f"task.distillation.{name} must be > 0, got {value}")
    if settings.schedule not in distillation_loss.SCHEDULES:
        raise ConfigError(f"task.distillation.schedule: unknown schedule '{settings.schedule}' "
                          f"(expected one of: {', '.join(distillation_loss.SCHEDULES)})")
    if settings.hidden_weight < 0:
        raise ConfigError(f"task.distillation.hidden_weight must be >= 0, got {settings.hidden_weight}")
    if settings.hidden_weight and len(settings.student_layers) != len(settings.teacher_layers):
        raise ConfigError(f"task.distillation.student_layers {list(settings.student_layers)} and teacher_layers "
                          f"{list(settings.teacher_layers)} must pair up (same length)")
    if settings.hidden_weight and not settings.student_layers:
        raise ConfigError("task.distillation.student_layers is empty: name the layers to match (e.g. [-1])")
    if settings.hidden_weight and settings.teacher_logits_dir:
        raise ConfigError("task.distillation.teacher_logits_dir cannot be used with hidden_weight > 0: hidden states "
                          "are not precomputed, so the teacher must run in the step (leave teacher_logits_dir empty)")


class _Untracked:
    """Holds an object out of Keras/TF tracking (not saved in checkpoints, not in ``weights``)."""

    def __init__(self, value):
        self.value = value


class DistillationModel(keras.Model):
    """The student's functional graph, trained with the distillation loss.

    Built on ``student.input``/``student.output`` (the same layers, so a checkpoint of this
    model restores into the plain student); ``call`` returns ``{"logits", "hidden_states"}``.
    Targets are ``{"label": ids}`` plus ``"teacher_logits"`` when they were precomputed.

    Args:
        student: The student classifier.
        teacher: A ``teacher.Teacher`` (None when every batch carries ``teacher_logits``).
        settings: The ``task.distillation`` config.
        train_steps: Steps over which alpha and T follow their schedule.
        label_smoothing: For the hard-label term.
        student_layers: 0-based student layers matched to the teacher's hidden states ([]: none).
        teacher_width: The teacher's hidden size (projections map to it).
    """

    def __init__(self, student: keras.Model, teacher, settings: DistillationConfig, train_steps: int,
                 label_smoothing: float = 0.0, student_layers: list[int] | None = None, teacher_width: int = 0):
        super().__init__(inputs=student.input, outputs=student.output, name=student.name)
        self._teacher = _Untracked(teacher)
        self._settings = _Untracked(settings.as_dict())
        self.train_steps = train_steps
        self.label_smoothing = label_smoothing
        student_layers = list(student_layers or [])
        self._view = _Untracked(classifier_with_hidden_states(student, student_layers) if student_layers else None)
        self.projection_names = []
        width = student.get_layer(ENCODER_NAME).hidden_dim
        for k in range(len(student_layers)):
            name = f"hidden_projection_{k}"
            if width != teacher_width:
                layer = keras.layers.Dense(teacher_width, name=name)
                layer.build((None, None, width))
                setattr(self, name, layer)  # attributes (not a list): then checkpoints hold them, for resume
            self.projection_names.append(name if width != teacher_width else None)
        self.kl_metric = keras.metrics.Mean(name="kl_to_teacher")
        self.hidden_metric = keras.metrics.Mean(name="hidden_mse") if student_layers else None
        self._label_metrics = _Untracked([])

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Compiles with the distillation loss; ``metrics`` (e.g. accuracy) apply to the logits and labels."""
        self._label_metrics.value = list(metrics or [])
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        tracker = compat.loss_tracker(self)
        own = [self.kl_metric] + ([self.hidden_metric] if self.hidden_metric is not None else [])
        return ([tracker] if tracker is not None else []) + list(self._label_metrics.value) + own

    def call(self, inputs, training=None, mask=None):
        if self._view.value is not None:
            return self._view.value(inputs, training=training)
        return {"logits": super().call(inputs, training=training, mask=mask), "hidden_states": []}

    def schedules(self, step) -> tuple[tf.Tensor, tf.Tensor]:
        """(alpha, temperature) at ``step``."""
        s = self._settings.value
        alpha = distillation_loss.schedule_value(s["alpha"], s["alpha_end"], s["schedule"], step, self.train_steps)
        temperature = distillation_loss.schedule_value(s["temperature"], s["temperature_end"], s["schedule"], step,
                                                       self.train_steps)
        return alpha, temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        settings = self._settings.value
        student_logits = y_pred["logits"]
        if "teacher_logits" in y:
            teacher = {"logits": tf.cast(y["teacher_logits"], tf.float32), "hidden_states": []}
        else:
            teacher = self._teacher.value(x)
        alpha, temperature = self.schedules(global_step(self.optimizer))
        per_example = distillation_loss.distillation_loss(y["label"], student_logits, teacher["logits"], alpha,
                                                          temperature, self.label_smoothing)
        loss = tf.reduce_mean(per_example)
        self.kl_metric.update_state(distillation_loss.soft_kl(teacher["logits"], student_logits))
        if self.hidden_metric is not None:
            errors = []
            pairs = zip(self.projection_names, y_pred["hidden_states"], teacher["hidden_states"])
            for name, student_h, teacher_h in pairs:
                projected = getattr(self, name)(student_h) if name else student_h
                errors.append(distillation_loss.masked_mse(projected, teacher_h, x["padding_mask"]))
            hidden = tf.add_n(errors) / len(errors)
            self.hidden_metric.update_state(hidden)
            loss = loss + settings["hidden_weight"] * hidden
        for extra in self.losses:
            loss = loss + tf.cast(tf.reduce_sum(extra), loss.dtype)
        return compat.scale_loss_for_distribution(loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self._label_metrics.value:
            metric.update_state(y["label"], y_pred["logits"])
        return self.get_metrics_result()


class DistillationTask(SentenceClassificationTask):
    """Sentence classification of a student distilled from a teacher (see the module docstring).

    ``build_model`` is the plain student (what ``llm_export`` restores); the Trainer trains
    :meth:`training_model` around it.

    Raises:
        ConfigError: Invalid ``task.distillation`` settings (see :func:`validate_settings`).
        DataError: As :class:`SentenceClassificationTask`.
    """

    def __init__(self, config: configs.ExperimentConfig):
        super().__init__(config)
        validate_settings(config.task.distillation)
        self._manifest = None
        self.report: dict = {}

    @staticmethod
    def resolve_config(config: configs.ExperimentConfig) -> None:
        """With ``student_init_layers``: writes the student's dimensions (the teacher's widths,
        one layer per listed teacher layer) into ``task.model``, so ``params.yaml`` describes it.

        Raises:
            ConfigError: A teacher that is not a training ``model_dir``, bad layer indices, or a
                ``task.model`` dimension that disagrees.
        """
        settings = config.task.distillation
        if not settings.student_init_layers:
            return
        teacher_dims = teacher_lib.encoder_dimensions(settings.teacher_dir, FIELD_INIT)
        layers = student_init.teacher_layer_numbers(settings.student_init_layers, teacher_dims["num_layers"],
                                                    FIELD_INIT)
        dims = student_init.student_dimensions(teacher_dims, layers, config.task.model.intermediate_dim)
        for key, value in dims.items():
            given = getattr(config.task.model, key)
            if given and given != value:
                raise ConfigError(f"task.model.{key}={given} disagrees with {key}={value} of a student built from the "
                                  f"teacher's layers {layers} ({FIELD_INIT}); leave it 0")
        config.override({"task": {"model": dims}}, is_strict=True)

    def initialize_model(self, model: keras.Model) -> str | None:
        """Starts a fresh student from the teacher's layers (``student_init_layers``); None when not set.

        Returns:
            What the student was initialised from (for the log).
        """
        settings = self.config.task.distillation
        if not settings.student_init_layers:
            return None
        teacher = teacher_lib.load_teacher(settings.teacher_dir, settings.teacher_checkpoint)
        if teacher.model is None:
            raise ConfigError(f"{FIELD_INIT}: the teacher {settings.teacher_dir} is a SavedModel; starting the student "
                              "from its layers needs its training model_dir")
        copied = student_init.copy_teacher_weights(model, teacher.model, settings.student_init_layers,
                                                   self.data.tokenizer.vocab, load_vocab(teacher.info.vocab_path),
                                                   FIELD_INIT)
        return (f"the teacher {teacher.info.checkpoint}: layers {copied['teacher_layers']} (feed-forward units "
                f"{copied['feedforward_units']}), embedding rows {copied['vocabulary_rows']}, "
                f"{copied['position_rows']} positions, head {copied['head_layers']}")

    def logits_manifest(self) -> dict | None:
        """The checked manifest of ``teacher_logits_dir`` (None when the teacher runs in the step)."""
        directory = self.config.task.distillation.teacher_logits_dir
        if directory and self._manifest is None:
            self._manifest = teacher_logits.open_teacher_logits(directory, self.config, self.data.labels)
        return self._manifest

    def record_files(self, split: str) -> list[str]:
        """Shards with the teacher's logits when they were precomputed, else the prepared data's."""
        manifest = self.logits_manifest()
        if manifest is None:
            return super().record_files(split)
        return teacher_logits.logits_files(self.config.task.distillation.teacher_logits_dir, manifest, split)

    def build_inputs(self, split: str, training: bool, skip_batches: int = 0) -> tf.data.Dataset:
        """Batches of (model inputs, ``{"label"}`` [+ ``"teacher_logits"`` when precomputed])."""
        base = self.example_transform()
        precomputed = self.logits_manifest() is not None
        spec = {teacher_logits.FEATURE: tf.io.FixedLenFeature([self.num_classes], tf.float32)}

        def transform(serialized):
            inputs, labels = base(serialized)
            targets = {"label": labels}
            if precomputed:
                targets[teacher_logits.FEATURE] = tf.io.parse_example(serialized, spec)[teacher_logits.FEATURE]
            return inputs, targets

        return self.batched_inputs(split, training, skip_batches, transform)

    def _check_precomputed_teacher(self, manifest: dict) -> None:
        """The teacher named in the config still exists and still has the checkpoint the logits came from."""
        settings = self.config.task.distillation
        if not io_utils.isdir(settings.teacher_dir):
            raise ConfigError(f"{teacher_lib.FIELD}: {settings.teacher_dir}: no such directory")
        if manifest["teacher_kind"] == "model_dir":
            try:
                current = io_utils.abspath(find_checkpoint(settings.teacher_dir, settings.teacher_checkpoint))
            except DataError as e:
                raise ConfigError(f"{teacher_lib.FIELD}: {e}") from None
            if current != manifest["teacher_checkpoint"]:
                raise ConfigError(f"{teacher_logits.FIELD}: logits were computed from "
                                  f"{manifest['teacher_checkpoint']}, "
                                  f"the teacher's '{settings.teacher_checkpoint}' checkpoint is now {current}; "
                                  f"precompute them again (--mode={teacher_logits.MODE})")

    def training_model(self, student: keras.Model) -> DistillationModel:
        """Wraps the student for training: loads and checks the teacher, adds the projections.

        Called by the Trainer inside the strategy scope.

        Raises:
            ConfigError: Missing or unusable teacher, labels or vocabulary that differ from the
                student's, stale precomputed logits, bad layer indices, or FGM (not supported).
        """
        config = self.config
        settings = config.task.distillation
        if config.trainer.fgm_epsilon:
            raise ConfigError("trainer.fgm_epsilon: FGM is not supported with distillation (set it to 0)")
        hidden = settings.hidden_weight > 0
        manifest = self.logits_manifest()
        teacher = None
        if manifest is not None:
            self._check_precomputed_teacher(manifest)
            teacher_params, teacher_width = manifest["teacher_params"], 0
        else:
            teacher = teacher_lib.load_teacher(settings.teacher_dir, settings.teacher_checkpoint,
                                               settings.teacher_layers if hidden else None)
            teacher_lib.check_compatible(teacher.info, self.data.labels, teacher_lib.vocab_path_of(self.data.directory),
                                         self.data.directory)
            teacher_params, teacher_width = teacher.info.params, teacher.info.hidden_dim
        student_layers = []
        if hidden:
            encoder = student.get_layer(ENCODER_NAME)
            student_layers = resolve_layers(settings.student_layers, encoder.num_layers,
                                            "task.distillation.student_layers")
        model = DistillationModel(student, teacher, settings, config.trainer.train_steps, config.task.label_smoothing,
                                  student_layers, teacher_width)
        student_total = count_params(student.weights)
        projections = count_params(model.weights) - student_total
        self.report = {
            "student_params": student_total,
            "student_trainable_params": count_params(student.trainable_weights),
            "teacher_params": int(teacher_params),
            "student_teacher_ratio": student_total / teacher_params if teacher_params else 0.0,
            "projection_params": projections,
        }
        logging.info("distillation: student %s parameters (%s trainable), teacher %s (frozen, %s), student/teacher "
                     "%.1f%%, training-only projections %s; teacher logits %s", f"{student_total:,}",
                     f"{self.report['student_trainable_params']:,}", f"{int(teacher_params):,}",
                     manifest["teacher"] if manifest else teacher.info.source,
                     100 * self.report["student_teacher_ratio"],
                     f"{projections:,}",
                     f"precomputed in {settings.teacher_logits_dir}" if manifest else "computed in the step")
        return model

    def parameter_report(self) -> dict:
        """Student, teacher and projection parameter counts (after :meth:`training_model`)."""
        return dict(self.report)


@tasks.register("distillation", DistillationTask)
def distillation() -> configs.ExperimentConfig:
    """Defaults for distillation: tiny student, seq 128, batch 32, alpha 0.5, T 2, constant."""
    return configs.ExperimentConfig(
        task=DistillationTaskConfig(data=configs.DataConfig(seq_length=128, global_batch_size=32)),
        trainer=configs.TrainerConfig(train_steps=2000, steps_per_loop=200, best_metric="accuracy"),
    )
