"""The one place llm_tf touches private APIs of Keras, TensorFlow, keras-hub, LiteRT and tensorflow-text.

Each entry below names the private API it uses, why llm_tf needs it (no public API does the
same) and the versions it was checked on (:data:`CHECKED_ON`). An upgrade of one of these
libraries touches this file only; ``tests/test_compat.py`` exercises every entry against the
installed versions, so an upgrade that breaks one fails a test named after it.

Where a class of ours must override a private method to change what the base class does, the
override stays in that class: here a tuple names those methods, and the class is built
through :func:`private_overrides`, which checks that the base class still has each of them
with the override's parameters and that no other private name of ours shadows one of the base
class's. Every other private attribute read, function called or module imported is a function here.

Importing this module imports nothing else: each entry imports the library it needs when called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

#: The versions every entry was checked on.
CHECKED_ON = {"tensorflow": "2.20.0", "keras": "3.15.1", "keras-hub": "0.32.0", "tensorflow-text": "2.20.1",
              "ai-edge-litert": "2.3.0"}


class CompatError(RuntimeError):
    """An installed library no longer has a private API this module relies on (a bug to fix here)."""


# -- private methods our subclasses override ----------------------------------------------------

#: ``keras.optimizers.AdamW`` private methods overridden by ``llm_tf.training.optimizers.AdamW``
#: (Keras's TensorFlow optimizer, ``keras/src/backend/tensorflow/optimizer.py`` and
#: ``keras/src/optimizers/base_optimizer.py``): where the cross-replica sum happens
#: (``_all_reduce_sum_gradients``; clipping moves after it, ``_clip_gradients`` stops clipping
#: before it), the update in the cross-replica context (``_distributed_tf_update_step``, the
#: Adam scalars once per step), gradient accumulation under any strategy
#: (``_backend_apply_gradients``) and the weight decay (``_apply_weight_decay``, its scalar once
#: per step). Keras has no public hook at these points. Checked on keras 3.15.1.
OPTIMIZER_PRIVATE_OVERRIDES = ("_distributed_tf_update_step", "_backend_apply_gradients", "_all_reduce_sum_gradients",
                               "_clip_gradients", "_apply_weight_decay")

#: ``keras.Model`` private methods overridden by ``llm_tf.training.multi_worker.MultiWorkerFit``:
#: Keras's TensorFlow trainer builds the model from a batch mean-reduced across replicas, which
#: fails with several workers (tensorflow/tensorflow#72388). The override also relies on the
#: iterator ``fit``/``evaluate`` pass it yielding ``(begin_step, end_step, batch_iterator)``, as
#: Keras's own does (``keras/src/backend/tensorflow/trainer.py``). Checked on keras 3.15.1.
MODEL_PRIVATE_OVERRIDES = ("_maybe_symbolic_build",)


def check_private_overrides(cls: type, base: type, names: tuple[str, ...]) -> None:
    """Checks that ``cls`` overrides exactly the private methods ``names`` of ``base``.

    Each of ``names`` must be a method of ``base`` taking the same parameters as ``cls``'s
    override (a renamed or removed method would leave the override dead code, silently); every
    other private name ``cls`` defines must be new to ``base`` (else it overrides one unknowingly).

    Raises:
        CompatError: One of these does not hold.
    """
    problems = []
    for name in names:
        ours = vars(cls).get(name)
        theirs = getattr(base, name, None)
        if ours is None:
            problems.append(f"{cls.__name__} does not define {name}")
        elif not callable(theirs):
            problems.append(f"{base.__module__}.{base.__name__} has no method {name} any more")
        elif list(inspect.signature(ours).parameters) != list(inspect.signature(theirs).parameters):
            problems.append(f"{base.__name__}.{name}{inspect.signature(theirs)} does not match the override "
                            f"{cls.__name__}.{name}{inspect.signature(ours)}")
    for name in vars(cls):
        if name.startswith("_") and not name.startswith("__") and name not in names and hasattr(base, name):
            problems.append(f"{cls.__name__}.{name} overrides {base.__name__}.{name} without being listed")
    if problems:
        raise CompatError("; ".join(problems) + " (see llm_tf/compat.py)")


def private_overrides(base: type, names: tuple[str, ...]) -> Callable[[type], type]:
    """Class decorator: :func:`check_private_overrides` when the class is built; returns the class."""

    def decorate(cls: type) -> type:
        check_private_overrides(cls, base, names)
        return cls

    return decorate


# -- Keras: losses and the trainer --------------------------------------------------------------


def scale_loss_for_distribution(loss):
    """``loss`` divided by the number of replicas in sync, as Keras's own ``compute_loss`` returns it.

    Uses ``keras.src.losses.loss.scale_loss_for_distribution`` (not exported): a model's own
    ``compute_loss`` must scale like Keras's, since the TensorFlow trainer sums the replicas'
    gradients. Checked on keras 3.15.1.
    """
    from keras.src.losses import loss as keras_loss

    return keras_loss.scale_loss_for_distribution(loss)


def unscale_loss_for_distribution(loss):
    """The inverse of :func:`scale_loss_for_distribution`, for the ``loss`` log.

    Uses ``keras.src.losses.loss.unscale_loss_for_distribution`` (not exported): a custom
    ``train_step`` logs the per-replica loss times the replicas, as Keras's does. Checked on
    keras 3.15.1.
    """
    from keras.src.losses import loss as keras_loss

    return keras_loss.unscale_loss_for_distribution(loss)


def loss_tracker(model: keras.Model):
    """The ``Mean`` metric behind a compiled model's ``loss`` log (None before ``compile``).

    Uses ``Model._loss_tracker``: a custom ``train_step`` updates it as Keras's does, and a
    custom ``metrics`` property lists it (Keras resets the metrics it lists each epoch).
    Checked on keras 3.15.1.
    """
    return getattr(model, "_loss_tracker", None)


def symbolic_build(model: keras.Model, data_batch) -> None:
    """Builds the model, its compiled loss and metrics, and its optimizer from one batch's shapes.

    Uses ``Model._symbolic_build(data_batch=...)``: what ``fit``/``evaluate`` run before the
    first step, called by ``MultiWorkerFit._maybe_symbolic_build`` (see
    :data:`MODEL_PRIVATE_OVERRIDES`). Checked on keras 3.15.1.
    """
    model._symbolic_build(data_batch=data_batch)


def sublayers(layer: keras.layers.Layer) -> list:
    """Every layer inside ``layer``, recursively (not ``layer`` itself).

    Uses ``Layer._flatten_layers(include_self=False)``: a keras-hub backbone's transformer
    layers' own sub-layers (the LoRA targets) are in no public list. Checked on keras 3.15.1,
    keras-hub 0.32.0.
    """
    return list(layer._flatten_layers(include_self=False))


# -- Keras: optimizer state ---------------------------------------------------------------------


def batch_counter(optimizer: keras.optimizers.Optimizer):
    """The variable counting ``apply`` calls, i.e. training batches (micro-batches when accumulating).

    Uses ``Optimizer._iterations``: the public ``iterations`` is ``_iterations //
    gradient_accumulation_steps`` (weight updates). Checked on keras 3.15.1.
    """
    return optimizer._iterations


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The position of a trainable variable in the optimizer's per-variable slot lists.

    Uses ``Optimizer._get_variable_index`` (the slots are only public as one flat list).
    Checked on keras 3.15.1.
    """
    return optimizer._get_variable_index(variable)


def adam_moments(optimizer: keras.optimizers.Adam, index: int) -> tuple:
    """Adam's first and second moment variables of the variable at ``index`` (:func:`variable_index`).

    Uses ``Adam._momentums`` and ``Adam._velocities``: the fused Adam step
    (``ResourceApplyAdam``) updates Keras's own slots, so checkpoints keep their layout.
    Checked on keras 3.15.1.
    """
    return optimizer._momentums[index], optimizer._velocities[index]


def accumulated_gradients(optimizer: keras.optimizers.Optimizer) -> list:
    """The gradient accumulators (one per trainable variable; empty without accumulation).

    Uses ``Optimizer._accumulated_gradients``: accumulating under a strategy writes Keras's
    own accumulators, so checkpoints keep their layout. Checked on keras 3.15.1.
    """
    return optimizer._accumulated_gradients


def optimizer_strategy(optimizer: keras.optimizers.Optimizer) -> tf.distribute.Strategy:
    """The distribution strategy the optimizer was created under.

    Uses the TensorFlow optimizer's ``_distribution_strategy`` (Keras's own cross-replica calls
    use it). Checked on keras 3.15.1.
    """
    return optimizer._distribution_strategy


def uses_weight_decay(optimizer: keras.optimizers.Optimizer, variable) -> bool:
    """Whether weight decay applies to ``variable`` (``exclude_from_weight_decay`` honoured).

    Uses ``Optimizer._use_weight_decay``, the test Keras's own decay applies. Checked on keras 3.15.1.
    """
    return optimizer._use_weight_decay(variable)


# -- keras-hub ----------------------------------------------------------------------------------

#: The sub-layers of a keras-hub ``TransformerEncoder`` that hold weights, by layer name; the
#: layer keeps each as the attribute ``_<name>``.
TRANSFORMER_ENCODER_PARTS = ("self_attention_layer", "self_attention_layer_norm", "feedforward_layer_norm",
                             "feedforward_intermediate_dense", "feedforward_output_dense")


def transformer_encoder_parts(layer: keras.layers.Layer) -> dict:
    """Layer name -> sub-layer of a keras-hub ``TransformerEncoder`` (:data:`TRANSFORMER_ENCODER_PARTS`).

    Uses the private attributes ``_self_attention_layer`` ... ``_feedforward_output_dense``:
    starting a student from a teacher's layers copies them one by one, cutting the feed-forward
    ones (``llm_tf.models.student_init``); keras-hub exposes none of them. Checked on
    keras-hub 0.32.0.
    """
    return {name: getattr(layer, "_" + name) for name in TRANSFORMER_ENCODER_PARTS}


# -- TensorFlow: distribution -------------------------------------------------------------------


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy spans more than one worker.

    Uses ``strategy.extended._in_multi_worker_mode()`` (the worker count is not public; Keras
    and tf.distribute ask the same). Checked on tensorflow 2.20.0.
    """
    return strategy.extended._in_multi_worker_mode()


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (for the binaries' start line).

    Uses ``tensorflow.python.util._pywrap_util_port.IsMklEnabled``: TensorFlow has no public
    call for it, and ``TF_ENABLE_ONEDNN_OPTS`` alone does not say (the default depends on the
    CPU). Checked on tensorflow 2.20.0.
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def maybe_merge_call(fn: Callable, strategy: tf.distribute.Strategy, *args, **kwargs):
    """Runs ``fn(strategy, *args, **kwargs)`` in the cross-replica context (directly if already there).

    Uses ``tf.__internal__.distribute.interim.maybe_merge_call``, which Keras's optimizer uses for
    its cross-replica updates (it skips the ``merge_call`` where the strategy allows). Checked on
    tensorflow 2.20.0.
    """
    import tensorflow as tf

    return tf.__internal__.distribute.interim.maybe_merge_call(fn, strategy, *args, **kwargs)


# -- TensorFlow: SavedModel and TFLite conversion ----------------------------------------------


def write_fingerprint(export_dir: str) -> None:
    """Writes ``fingerprint.pb`` of the SavedModel in ``export_dir`` from its current files.

    Uses ``tensorflow.python.saved_model.fingerprinting_utils.write_fingerprint``: after
    ``saved_model.pb`` is rewritten its fingerprint must be recomputed; TensorFlow only reads
    fingerprints publicly. Checked on tensorflow 2.20.0.
    """
    from tensorflow.python.saved_model import fingerprinting_utils

    fingerprinting_utils.write_fingerprint(export_dir)


def flexbuffer_string_map(entries: dict[str, bytes]) -> bytes:
    """A flexbuffer map of keys to STRING values holding arbitrary bytes.

    TFLite's ``signature_defs_metadata`` (``tensorflow/lite/tools/signature/signature_def_util.cc``,
    what TF Serving's TFLite session reads) stores serialized ``SignatureDef`` protos as flexbuffer
    *strings*; ``flatbuffers.flexbuffers.Builder.String`` only takes ``str`` (UTF-8 encoded), so the
    raw bytes are written with its private ``_WriteBlob(..., type_=Type.STRING)``, which
    ``String`` itself calls. Checked on flatbuffers 25.12.19.

    Raises:
        CompatError: ``Builder._WriteBlob`` is gone.
    """
    from flatbuffers import flexbuffers

    builder = flexbuffers.Builder()
    _check_attribute(builder, "_WriteBlob")
    with builder.Map():
        for key in sorted(entries):
            builder.Key(key)
            builder._WriteBlob(bytes(entries[key]), append_zero=True, type_=flexbuffers.Type.STRING)
    return bytes(builder.Finish())


def set_calibration_custom_ops(converter: tf.lite.TFLiteConverter, registerers: list) -> None:
    """Registers custom ops (e.g. tensorflow-text's) with the interpreter that calibrates full-int8.

    Sets ``converter.target_spec._experimental_custom_op_registerers``, which the converter reads
    when it builds its calibrator; there is no public way. Checked on tensorflow 2.20.0.

    Raises:
        CompatError: The attribute is gone (setting it would change nothing).
    """
    _check_attribute(converter.target_spec, "_experimental_custom_op_registerers")
    converter.target_spec._experimental_custom_op_registerers = list(registerers)


def set_calibrate_only(converter: tf.lite.TFLiteConverter) -> None:
    """Makes ``converter.convert()`` return the calibrated float model, not a quantized one.

    Sets ``converter._experimental_calibrate_only`` (what TFLite's ``QuantizationDebugger`` does),
    so that :func:`mlir_quantize` can quantize with a denylist. Checked on tensorflow 2.20.0.

    Raises:
        CompatError: The attribute is gone (setting it would change nothing).
    """
    _check_attribute(converter, "_experimental_calibrate_only")
    converter._experimental_calibrate_only = True


def _check_attribute(obj, name: str) -> None:
    if not hasattr(obj, name):
        raise CompatError(f"{type(obj).__module__}.{type(obj).__qualname__} has no attribute {name} any more "
                          "(see llm_tf/compat.py)")


def mlir_quantize(calibrated: bytes, denylisted_ops: list[str]) -> bytes:
    """Quantizes a calibrated model to int8 (per channel, float inputs/outputs), ``denylisted_ops`` left float.

    Uses ``tensorflow.lite.python.convert.mlir_quantize`` (what
    ``QuantizationDebugger.get_nondebug_quantized_model`` runs; the public converter has no op
    denylist). Checked on tensorflow 2.20.0.
    """
    from tensorflow.lite.python import convert as lite_convert

    return lite_convert.mlir_quantize(calibrated, disable_per_channel=False, fully_quantize=False,
                                      denylisted_ops=list(denylisted_ops))


# -- LiteRT / tf.lite interpreters ---------------------------------------------------------------


def interpreter_wrapper(interpreter):
    """The C++ interpreter wrapper of a TFLite ``Interpreter`` (None if the runtime does not expose it).

    Uses ``Interpreter._interpreter``: its ``NumNodes``/``NodeName``/``NodeInputs``/
    ``NodeOutputs`` tell which nodes a delegate took; the public API lists no nodes after
    delegation. Checked on ai-edge-litert 2.3.0 (and tf.lite of tensorflow 2.20.0).
    """
    return getattr(interpreter, "_interpreter", None)


def signature_runner_internals(runner) -> tuple:
    """``(interpreter wrapper, subgraph index)`` of a ``SignatureRunner``, each None if not exposed.

    Uses ``SignatureRunner._interpreter_wrapper`` and ``._subgraph_index``: timing ``Invoke``
    alone means doing the runner's resize/allocate/set/invoke/get steps ourselves. Checked on
    ai-edge-litert 2.3.0 (and tf.lite of tensorflow 2.20.0).
    """
    return getattr(runner, "_interpreter_wrapper", None), getattr(runner, "_subgraph_index", None)


# -- tensorflow-text ------------------------------------------------------------------------------


def basic_tokenizer(lower_case: bool):
    """tensorflow-text's BERT pre-tokenizer (white space and punctuation split, optional lower-casing).

    Uses ``tensorflow_text.python.ops.bert_tokenizer.BasicTokenizer`` (not exported at the
    package's top level): counting words for a vocabulary the way ``BertTokenizer`` splits them.
    Checked on tensorflow-text 2.20.1.
    """
    from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

    return BasicTokenizer(lower_case=lower_case)


def learn_wordpiece_vocab(word_counts: list, vocab_size: int, reserved_tokens: list[str], **options) -> list[str]:
    """A WordPiece vocabulary learnt from ``(word, count)`` pairs (``options``: the learner's thresholds).

    Uses ``tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib.learn``, the
    learner behind the documented ``bert_vocab_from_dataset``, which only takes a dataset of
    texts (llm_tf counts words once, itself). Checked on tensorflow-text 2.20.1.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    return learner.learn(word_counts, vocab_size, list(reserved_tokens), **options)
