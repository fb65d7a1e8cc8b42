"""Starting a smaller student from a trained teacher's own layers (DistilBERT-style).

The student is a keras-hub ``BertBackbone`` classifier as wide as the teacher (hidden size,
heads, feed-forward size) with fewer layers, a vocabulary that is a cut of the teacher's
(:mod:`llm_tf.text.vocab_cut`) and possibly a shorter position table. :func:`copy_teacher_weights`
fills it from the teacher:

* token embeddings: the teacher's rows of the student's tokens (a gather by token string);
* position embeddings: the teacher's first ``max_sequence_length`` rows;
* segment embeddings, the embeddings' layer norm and the pooler: as they are;
* student layer ``i``: the teacher's layer ``teacher_layers[i]``; a student with a smaller
  feed-forward size keeps, in each layer, the teacher's feed-forward units that matter most
  (largest ``|input weights| * |output weights|``, :func:`feedforward_units`), so depth can be
  traded for width at the same parameter count;
* the head outside the encoder (same layer names): as it is.

Example:
    >>> copy_teacher_weights(student, teacher, [0, 1], student_vocab, teacher_vocab)
    {'layers': [0, 1], 'vocabulary': '5,000 of 30,522 rows', ...}
"""

import keras
import numpy as np

from llm_tf import compat
from llm_tf.errors import ConfigError
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.models.hidden_states import resolve_layers
from llm_tf.text.vocab_cut import row_indices

#: Encoder dimensions the student must share with the teacher to take its layers.
SHARED_DIMENSIONS = ("hidden_dim", "num_heads")


def teacher_layer_numbers(teacher_layers: list[int], teacher_num_layers: int, field: str) -> list[int]:
    """The teacher layers a student starts from, as 0-based numbers (-1 is the last).

    Raises:
        ConfigError: A layer the teacher does not have, no layer, or a layer named twice.
    """
    layers = resolve_layers(teacher_layers, teacher_num_layers, field)
    if not layers:
        raise ConfigError(f"{field} is empty: name the teacher layers the student starts from (e.g. [0, 5])")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"{field}: {list(teacher_layers)} names a layer twice")
    return layers


def student_dimensions(teacher_dims: dict, teacher_layers: list[int], intermediate_dim: int = 0) -> dict:
    """The ``task.model`` fields of a student built from ``teacher_layers`` of a teacher of ``teacher_dims``.

    Args:
        intermediate_dim: The student's feed-forward size (0: the teacher's).

    Raises:
        ConfigError: ``intermediate_dim`` above the teacher's.
    """
    if intermediate_dim > teacher_dims["intermediate_dim"]:
        raise ConfigError(f"task.model.intermediate_dim={intermediate_dim} exceeds the teacher's "
                          f"{teacher_dims['intermediate_dim']}: a student built from its layers keeps a subset of them")
    return {"num_layers": len(teacher_layers), **{k: teacher_dims[k] for k in SHARED_DIMENSIONS},
            "intermediate_dim": intermediate_dim or teacher_dims["intermediate_dim"]}


def _copy(target: keras.layers.Layer, source: keras.layers.Layer) -> None:
    target.set_weights(source.get_weights())


def feedforward_units(layer, keep: int) -> np.ndarray:
    """The ``keep`` feed-forward units of a keras-hub ``TransformerEncoder`` that matter most, in order.

    A unit's score is the norm of its input weights times the norm of its output weights (how
    much it can move the layer's output); ties go to the lower index.
    """
    parts = compat.transformer_encoder_parts(layer)
    inner = keras.ops.convert_to_numpy(parts["feedforward_intermediate_dense"].kernel)  # [hidden, units]
    outer = keras.ops.convert_to_numpy(parts["feedforward_output_dense"].kernel)  # [units, hidden]
    score = np.linalg.norm(inner, axis=0) * np.linalg.norm(outer, axis=1)
    return np.sort(np.argsort(-score, kind="stable")[:keep])


def _copy_layer(target, source) -> None:
    """A transformer layer, its feed-forward cut to the target's size when it is smaller."""
    ours, theirs = compat.transformer_encoder_parts(target), compat.transformer_encoder_parts(source)
    size = ours["feedforward_intermediate_dense"].units
    if size == theirs["feedforward_intermediate_dense"].units:
        _copy(target, source)
        return
    units = feedforward_units(source, size)
    for name in ("self_attention_layer", "self_attention_layer_norm", "feedforward_layer_norm"):
        _copy(ours[name], theirs[name])
    inner, outer = theirs["feedforward_intermediate_dense"], theirs["feedforward_output_dense"]
    ours["feedforward_intermediate_dense"].set_weights([keras.ops.convert_to_numpy(inner.kernel)[:, units],
                                                        keras.ops.convert_to_numpy(inner.bias)[units]])
    ours["feedforward_output_dense"].set_weights([keras.ops.convert_to_numpy(outer.kernel)[units],
                                                  keras.ops.convert_to_numpy(outer.bias)])


def copy_teacher_weights(student: keras.Model, teacher: keras.Model, teacher_layers: list[int],
                         student_vocab: list[str], teacher_vocab: list[str], field: str = "teacher_layers") -> dict:
    """Fills a student classifier with a teacher classifier's weights (see the module docstring).

    Args:
        student: The student task model (an ``encoder`` layer plus head layers).
        teacher: The trained teacher task model of the same kind.
        teacher_layers: For each student layer, the teacher layer it starts from.
        student_vocab: The student's vocabulary (a cut of the teacher's).
        teacher_vocab: The teacher's vocabulary.
        field: Config field named in errors.

    Returns:
        What was copied: layers, vocabulary rows, position rows, head layers.

    Raises:
        ConfigError: Other widths (or a larger feed-forward size), a layer count that is not
            ``len(teacher_layers)``, a longer position table than the teacher's, a student token
            the teacher lacks, or head layers that do not match.
    """
    ours, theirs = student.get_layer(ENCODER_NAME), teacher.get_layer(ENCODER_NAME)
    for key in SHARED_DIMENSIONS:
        if getattr(ours, key) != getattr(theirs, key):
            raise ConfigError(f"{field}: the student's {key} is {getattr(ours, key)}, the teacher's "
                              f"{getattr(theirs, key)}; a student built from teacher layers has the teacher's widths")
    if ours.intermediate_dim > theirs.intermediate_dim:
        raise ConfigError(f"{field}: the student's intermediate_dim {ours.intermediate_dim} exceeds the teacher's "
                          f"{theirs.intermediate_dim}")
    layers = teacher_layer_numbers(teacher_layers, theirs.num_layers, field)
    if ours.num_layers != len(layers):
        raise ConfigError(f"{field}: {len(layers)} teacher layers for a student of {ours.num_layers} layers")
    if ours.max_sequence_length > theirs.max_sequence_length:
        raise ConfigError(f"{field}: the student's max_sequence_length {ours.max_sequence_length} exceeds the "
                          f"teacher's {theirs.max_sequence_length}")
    rows = row_indices(student_vocab, teacher_vocab, "the student's vocabulary", "the teacher's vocabulary")
    ours.token_embedding.embeddings.assign(np.take(keras.ops.convert_to_numpy(theirs.token_embedding.embeddings),
                                                   rows, axis=0))
    positions = keras.ops.convert_to_numpy(theirs.position_embedding.position_embeddings)
    ours.position_embedding.position_embeddings.assign(positions[:ours.max_sequence_length])
    for name in ("segment_embedding", "embeddings_layer_norm", "pooled_dense"):
        _copy(getattr(ours, name), getattr(theirs, name))
    for i, j in enumerate(layers):
        _copy_layer(ours.transformer_layers[i], theirs.transformer_layers[j])
    head = []
    for layer in student.layers:
        if layer.name == ENCODER_NAME or not layer.weights:
            continue
        try:
            source = teacher.get_layer(layer.name)
        except ValueError:
            raise ConfigError(f"{field}: the teacher has no head layer '{layer.name}' to start the student's "
                              "from") from None
        if [w.shape for w in source.weights] != [w.shape for w in layer.weights]:
            raise ConfigError(f"{field}: head layer '{layer.name}' has other shapes in the teacher")
        _copy(layer, source)
        head.append(layer.name)
    return {"teacher_layers": layers, "vocabulary_rows": f"{len(rows):,} of {len(teacher_vocab):,}",
            "position_rows": ours.max_sequence_length, "head_layers": head,
            "feedforward_units": f"{ours.intermediate_dim:,} of {theirs.intermediate_dim:,}"}
