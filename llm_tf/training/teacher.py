"""The teacher of a distillation: a frozen classifier giving logits (and hidden states).

A teacher is either a training ``model_dir`` of a sentence classifier (rebuilt from its
``params.yaml`` and checkpoint by :mod:`llm_tf.training.model_dir`; it can also give the hidden
states of chosen encoder layers) or an exported SavedModel version directory (its
``predict_tokens`` signature gives ``logits``; no hidden states). Either way it runs in
inference mode on the student's packed inputs, so its vocabulary and labels must be the
student's: :func:`check_compatible` says which differ. Either may be on a bucket (``gs://...``).
"""

import dataclasses
import hashlib
import os

import keras
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data.prepared import TOKENIZER_DIR
from llm_tf.errors import ConfigError, DataError
from llm_tf.export import export_dir
from llm_tf.export.signatures import TOKENS_SIGNATURE
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.models.hidden_states import classifier_with_hidden_states, resolve_layers
from llm_tf.models.parameters import count_params
from llm_tf.text.tokenizer import TokenizerConfig
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training.sentence_classification import SentenceClassificationTask

#: The config field naming the teacher, used in error messages.
FIELD = "task.distillation.teacher_dir"


@dataclasses.dataclass
class TeacherInfo:
    """What identifies a teacher and what the student must agree with.

    Attributes:
        source: Absolute path of the teacher (``model_dir`` or SavedModel version directory).
        kind: ``model_dir`` or ``saved_model``.
        checkpoint: The checkpoint restored (``model_dir``), or the SavedModel path.
        step: Training step of that checkpoint (0 if unknown).
        labels: Label names in id order.
        vocab_path: The teacher's vocabulary file.
        params: Parameter count (all frozen).
        num_layers, hidden_dim: Encoder shape (0 for a SavedModel).
        tokenizer_dir: The teacher's own tokenizer directory (its prepared data's; empty for a
            SavedModel), used when the student's vocabulary is another (a cut of it).
    """

    source: str
    kind: str
    checkpoint: str
    step: int
    labels: list[str]
    vocab_path: str
    params: int
    num_layers: int = 0
    hidden_dim: int = 0
    tokenizer_dir: str = ""


class Teacher:
    """A frozen teacher: ``teacher(inputs)`` -> ``{"logits", "hidden_states"}`` (float32, no gradient).

    Args:
        info: Its :class:`TeacherInfo`.
        forward: Packed inputs -> ``{"logits": ..., "hidden_states": [...]}``.
        model: The Keras model behind ``forward`` (None for a SavedModel).
    """

    def __init__(self, info: TeacherInfo, forward, model: keras.Model | None = None):
        self.info = info
        self._forward = forward
        self.model = model

    def __call__(self, inputs: dict) -> dict:
        outputs = self._forward(inputs)
        return {"logits": tf.stop_gradient(tf.cast(outputs["logits"], tf.float32)),
                "hidden_states": [tf.stop_gradient(tf.cast(h, tf.float32)) for h in outputs.get("hidden_states", [])]}


def vocab_path_of(prepared_dir: str) -> str:
    """The vocabulary file of an ``llm_prepare`` output directory."""
    directory = os.path.join(prepared_dir, TOKENIZER_DIR)
    return os.path.join(directory, TokenizerConfig.load(directory).vocab_file)


def _digest(path: str) -> str:
    return hashlib.sha256(io_utils.read_bytes(path)).hexdigest()


def same_vocabulary(info: TeacherInfo, vocab_path: str) -> bool:
    """Whether the teacher's vocabulary file has the same bytes as ``vocab_path``."""
    return _digest(info.vocab_path) == _digest(vocab_path)


def check_compatible(info: TeacherInfo, labels: list[str], vocab_path: str, prepared_dir: str) -> None:
    """Checks that the teacher reads the student's token ids and predicts the student's labels.

    Args:
        info: The teacher.
        labels: The student's labels (from its prepared data).
        vocab_path: The student's vocabulary file.
        prepared_dir: The student's prepared data directory (named in errors).

    Raises:
        ConfigError: Different labels (or order) or a different vocabulary; both are named.
    """
    if list(info.labels) != list(labels):
        raise ConfigError(f"{FIELD}: the teacher {info.source} predicts labels {list(info.labels)}, the student's "
                          f"prepared data {prepared_dir} has {list(labels)} (labels and their order must agree)")
    if not same_vocabulary(info, vocab_path):
        theirs = io_utils.read_bytes(info.vocab_path).splitlines()
        ours = io_utils.read_bytes(vocab_path).splitlines()
        first = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        raise ConfigError(f"{FIELD}: the teacher's vocabulary {info.vocab_path} ({len(theirs)} entries) "
                          f"differs from the student's {vocab_path} ({len(ours)} entries), "
                          f"first at line {first + 1}; a teacher in the "
                          "step reads the student's token ids, so distil on data prepared with the teacher's "
                          "vocabulary, or precompute the teacher's logits (task.distillation.teacher_logits_dir), "
                          "which tokenizes each text the teacher's way")


def encoder_dimensions(path: str, field: str = FIELD) -> dict:
    """The encoder dimensions of a teacher's training ``model_dir`` (from its ``params.yaml``).

    Returns:
        ``num_layers``, ``hidden_dim``, ``num_heads``, ``intermediate_dim``, ``max_sequence_length``.

    Raises:
        ConfigError: No path, or not a training ``model_dir`` (e.g. a SavedModel); ``field`` is named.
    """
    if not path:
        raise ConfigError(f"{FIELD} is not set: {field} needs the teacher's training model_dir")
    if not model_dir_lib.is_training_dir(path):
        raise ConfigError(f"{field}: the teacher {path} is not a training model_dir (no {model_dir_lib.PARAMS_FILE}); "
                          "starting the student from the teacher's layers needs one")
    try:
        model = model_dir_lib.load_config(path).task.model
    except (DataError, ConfigError) as e:
        raise ConfigError(f"{field}: {e}") from None
    return {**model.dimensions(), "max_sequence_length": model.max_sequence_length}


def _from_model_dir(path: str, checkpoint: str, hidden_layers: list[int]) -> Teacher:
    policy = keras.mixed_precision.global_policy()
    try:
        trained = model_dir_lib.restore_trained_model(path, checkpoint)
    except (DataError, ConfigError) as e:
        raise ConfigError(f"{FIELD}: {e}") from None
    finally:
        keras.mixed_precision.set_global_policy(policy)  # restore builds in float32; the student keeps its policy
    if not isinstance(trained.task, SentenceClassificationTask):
        raise ConfigError(f"{FIELD}: {path} is a '{trained.config.experiment}' run; a teacher must be a sentence "
                          "classifier (sentence_classification or distillation)")
    model = trained.model
    model.trainable = False
    encoder = model.get_layer(ENCODER_NAME)
    info = TeacherInfo(io_utils.abspath(path), "model_dir", io_utils.abspath(trained.checkpoint), trained.step,
                       list(trained.task.data.labels), vocab_path_of(trained.task.data.directory),
                       count_params(model.weights), encoder.num_layers, encoder.hidden_dim,
                       os.path.join(trained.task.data.directory, TOKENIZER_DIR))
    if hidden_layers:
        layers = resolve_layers(hidden_layers, encoder.num_layers, "task.distillation.teacher_layers")
        view = classifier_with_hidden_states(model, layers)
        return Teacher(info, lambda inputs: view(inputs, training=False), model)
    return Teacher(info, lambda inputs: {"logits": model(inputs, training=False)}, model)


def _from_saved_model(path: str, hidden_layers: list[int]) -> Teacher:
    if hidden_layers:
        raise ConfigError(f"{FIELD}: {path} is a SavedModel, which gives logits only; hidden-state matching "
                          "(task.distillation.hidden_weight > 0) needs the teacher's training model_dir")
    loaded = tf.saved_model.load(path)
    if TOKENS_SIGNATURE not in loaded.signatures:
        raise ConfigError(f"{FIELD}: {path}: SavedModel has no '{TOKENS_SIGNATURE}' signature (has: "
                          f"{', '.join(sorted(loaded.signatures)) or 'none'}); export the teacher with llm_export")
    function = loaded.signatures[TOKENS_SIGNATURE]
    if "logits" not in function.structured_outputs:
        raise ConfigError(f"{FIELD}: {path}: '{TOKENS_SIGNATURE}' returns "
                          f"{', '.join(sorted(function.structured_outputs))}; "
                          "expected logits")
    try:
        labels = export_dir.load_labels(path)
    except DataError as e:
        raise ConfigError(f"{FIELD}: {e}") from None
    vocabularies = export_dir.vocabulary_files(path)
    if not vocabularies:
        raise ConfigError(f"{FIELD}: {path}: no vocabulary in {export_dir.ASSETS_DIR}/ (export the teacher with "
                          "llm_export)")
    vocab = "vocab.txt" if "vocab.txt" in vocabularies else vocabularies[0]
    info = TeacherInfo(io_utils.abspath(path), "saved_model", io_utils.abspath(path), 0, labels,
                       os.path.join(path, export_dir.ASSETS_DIR, vocab), count_params(function.variables))

    def forward(inputs):
        return function(**{k: tf.cast(inputs[k], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")})

    teacher = Teacher(info, forward)
    teacher.loaded = loaded  # keeps the restored variables alive
    return teacher


def load_teacher(path: str, checkpoint: str = "best", hidden_layers: list[int] | None = None) -> Teacher:
    """Loads a frozen teacher from a training ``model_dir`` or an exported SavedModel version.

    Call it inside the strategy scope of the training run, so its variables live where the
    student's do.

    Args:
        path: The teacher's ``model_dir`` (``params.yaml`` + checkpoints) or SavedModel
            version directory (``saved_model.pb`` with a ``predict_tokens`` signature).
        checkpoint: For a ``model_dir``: ``best``, ``latest`` or a checkpoint prefix.
        hidden_layers: Encoder layers whose hidden states the teacher also returns (a
            ``model_dir`` teacher only; negative indices count from the last).

    Returns:
        A :class:`Teacher`.

    Raises:
        ConfigError: No path, a missing path, neither a training run nor a SavedModel, no
            checkpoint, not a classifier, or hidden states asked of a SavedModel.
    """
    if not path:
        raise ConfigError(f"{FIELD} is not set: name the teacher's training model_dir or exported SavedModel version")
    if not io_utils.isdir(path):
        raise ConfigError(f"{FIELD}: {path}: no such directory")
    if model_dir_lib.is_training_dir(path):
        return _from_model_dir(path, checkpoint, list(hidden_layers or []))
    if io_utils.isfile(os.path.join(path, export_dir.SAVED_MODEL_FILE)):
        return _from_saved_model(path, list(hidden_layers or []))
    raise ConfigError(f"{FIELD}: {path}: neither a training model_dir (params.yaml) nor an exported SavedModel "
                      "version (saved_model.pb)")
