"""Server-side batching inside TensorFlow: the ``BatchFunction`` op (``--batching_engine=tensorflow``).

The default engine (:class:`~llm_tf.serving.batching.BatchScheduler`) queues requests in Python,
concatenates their numpy inputs, runs the signature once and splits the outputs. This engine
hands the same job to TensorFlow's own batcher, the ``BatchFunction`` op (what
``tf.nondifferentiable_batch_function`` builds; its C++ ``SharedBatchScheduler`` is the
scheduler TF Serving's session-level batching uses too). Every request thread calls one
``tf.function`` whose only op is ``BatchFunction`` wrapped around the signature; the calls
(Python releases the GIL while TensorFlow runs) meet in the op's queue, which concatenates their
inputs along axis 0, runs the signature once on a batch thread of its own, splits the outputs
and returns each caller its rows. The knobs of ``--batching_parameters_file`` map one to one:
``max_batch_size``, ``batch_timeout_micros``, ``num_batch_threads``, ``max_enqueued_batches``,
``allowed_batch_sizes`` (padding with copies of the batch's first row, as TF Serving).

What the op requires, and what this module does about it:

* **Equal non-batch shapes.** It concatenates with ``Concat``: requests whose inputs differ
  beyond axis 0 fail *the whole batch* with INVALID_ARGUMENT, and it has no equivalent of
  ``pad_variable_length_inputs``. Only signatures whose every input has a fully known shape
  after axis 0 (the text signatures: string ``[batch]``; ``[batch, 128]``) are batched
  in-graph, since the request checks then guarantee equal shapes; the others (``predict_tokens``:
  ``[batch, seq]``) stay on the Python scheduler, which batches equal shapes together and
  pads with ``pad_variable_length_inputs`` (:func:`graph_batcher` returns None for them).
* **Rows.** A request with more rows than ``max_batch_size`` is INVALID_ARGUMENT ``Task size N
  is larger than maximum input batch size M``, TF Serving's default (the op's
  ``enable_large_batch_splitting`` is off, as in ``BatchingParameters``). A request with zero
  rows runs unbatched (the op would answer it with outputs of shape ``[0]`` whatever their rank).
* **Outputs** must have the batch's rows on axis 0 (else INTERNAL, as on the Python path).
* **Errors** keep their TensorFlow code (``errors.from_code``): a full queue is UNAVAILABLE
  ``The batch scheduling queue ... is full``, a failing model fails every request of its batch
  with its own code, a closed batcher is UNAVAILABLE.
* **One queue per batcher.** The public decorator names the op's queue after its name scope,
  ``batch/``, in every function, so two decorated functions in one process share one queue and
  a batch runs whichever function its last request brought. We call ``tf.raw_ops.BatchFunction``
  with a ``shared_name`` unique to the version, signature and load.
* **Batch sizes.** The batched function also returns, per row, the batch's row count and the
  row's index in the batch; the request holding row 0 reports the batch to ``on_batch``
  (metrics: ``:tensorflow:serving:batch_size``), once per batch.

TensorFlow offers no way to delete the op's queue from Python: after a version is unloaded its
queue and its ``num_batch_threads`` idle threads stay until the process ends (a few threads per
hot reload per batched signature).

Example:
    >>> batcher = graph_batcher(signature_function, BatchingSpec(max_batch_size=8))  # doctest: +SKIP
    >>> batcher.submit({"text": np.array([b"great film"], dtype=object)})["scores"].shape  # doctest: +SKIP
    (1, 2)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from llm_tf.serving import errors

#: ``--batching_engine`` values: our Python scheduler, or TensorFlow's ``BatchFunction`` op.
ENGINES = ("python", "tensorflow")
_PROBE_OUTPUTS = 2  # appended to the signature's outputs: batch rows, row index in the batch
_instances = itertools.count()
_NODE_CONTEXT = re.compile(r"\s*\[\[\{\{node [^\n]*?\}\}\]\]")


def check_engine(engine: str, flag: str = "--batching_engine") -> None:
    """Checks a batching engine name.

    Args:
        engine: The name.
        flag: What to name in the message.

    Raises:
        ValueError: Not one of :data:`ENGINES`.
    """
    if engine not in ENGINES:
        raise ValueError(f"{flag}: {engine!r} is not one of {', '.join(ENGINES)}")


def variable_inner_dims(function: Any) -> list[str]:
    """The inputs of a signature function with a shape not fully known after axis 0.

    Args:
        function: A signature's concrete function (keyword inputs).

    Returns:
        Their aliases, sorted; empty when every request's non-batch shapes are the signature's.
    """
    _, inputs = function.structured_input_signature
    return sorted(alias for alias, spec in inputs.items()
                  if spec.shape.rank is None or spec.shape.rank == 0 or not spec.shape[1:].is_fully_defined())


def graph_batcher(function: Any, spec: Any, name: str = "",
                  on_batch: Callable[[int], None] | None = None) -> GraphBatcher | None:
    """A :class:`GraphBatcher` for a signature, or None where the op cannot batch it.

    Args:
        function: The signature's concrete function.
        spec: Batching parameters (the attributes of ``BatchingSpec``).
        name: Names the batcher in logs and messages (``model-version-signature``).
        on_batch: Called with each batch's row count.

    Returns:
        The batcher; None (logged) when an input has a variable shape after axis 0.
    """
    variable = variable_inner_dims(function)
    if variable:
        logging.info("%s: batched by the Python scheduler: input(s) %s have a variable shape after the batch axis, "
                     "which BatchFunction cannot concatenate", name, ", ".join(variable))
        return None
    return GraphBatcher(function, spec, name=name, on_batch=on_batch)


def _serving_error(error: tf.errors.OpError) -> errors.ServingError:
    """The request's status for a TensorFlow error of a batched call (node annotations dropped)."""
    message = _NODE_CONTEXT.sub("", error.message).strip()
    if message.startswith("Batched output tensor"):  # the outputs do not have the batch's rows
        return errors.internal(message)
    return errors.from_code(error.error_code, message)


class GraphBatcher:
    """Batches concurrent calls of one signature with TensorFlow's ``BatchFunction`` op.

    Same interface as :class:`~llm_tf.serving.batching.BatchScheduler`: :meth:`submit` and
    :meth:`close`.

    Args:
        function: The signature's concrete function: keyword inputs, a dict of outputs, every
            input's shape fully known after axis 0.
        spec: Batching parameters with the attributes of ``BatchingSpec``.
        name: Names the batcher in messages and in the op's queue name.
        on_batch: Called with the row count of every batch that runs (after padding).

    Raises:
        ValueError: A parameter is out of range, or an input's shape is not fully known after
            axis 0 (use :func:`graph_batcher`).
    """

    def __init__(self, function: Any, spec: Any, name: str = "", on_batch: Callable[[int], None] | None = None):
        self._name = name
        self._on_batch = on_batch
        self._max_batch_size = int(spec.max_batch_size)
        for field, minimum in (("max_batch_size", 1), ("num_batch_threads", 1), ("max_enqueued_batches", 1),
                               ("batch_timeout_micros", 0)):
            if int(getattr(spec, field)) < minimum:
                raise ValueError(f"{field} must be >= {minimum}, got {getattr(spec, field)}")
        variable = variable_inner_dims(function)
        if variable:
            raise ValueError(f"{name}: input(s) {', '.join(variable)} have a variable shape after the batch axis")
        _, inputs = function.structured_input_signature
        self._aliases = sorted(inputs)
        self._dtypes = [inputs[alias].dtype for alias in self._aliases]
        specs = [tf.TensorSpec([None, *inputs[alias].shape[1:]], inputs[alias].dtype) for alias in self._aliases]
        self._outputs = sorted(function.structured_outputs)
        self._function = function
        self._call = self._build(function, specs, spec)
        self._closed = False

    def _build(self, function: Any, specs: list[tf.TensorSpec], spec: Any) -> Any:
        """Traces the request function: ``BatchFunction`` around the signature plus the probes."""
        aliases, outputs = self._aliases, self._outputs

        def computation(*args):
            result = function(**dict(zip(aliases, args)))
            rows = tf.shape(args[0], out_type=tf.int32)[0]
            return [result[alias] for alias in outputs] + [tf.fill([rows], rows), tf.range(rows)]

        inner = tf.function(computation, autograph=False).get_concrete_function(*specs)
        shared_name = f"llm_tf_serving/{self._name or 'batcher'}/{next(_instances)}"

        def batched(*args):
            return tf.raw_ops.BatchFunction(
                in_tensors=list(args), captured_tensors=inner.captured_inputs, f=inner,
                num_batch_threads=int(spec.num_batch_threads), max_batch_size=self._max_batch_size,
                batch_timeout_micros=int(spec.batch_timeout_micros), Tout=[t.dtype for t in inner.outputs],
                max_enqueued_batches=int(spec.max_enqueued_batches),
                allowed_batch_sizes=[int(s) for s in (spec.allowed_batch_sizes or ())],
                shared_name=shared_name, enable_large_batch_splitting=False)

        return tf.function(batched, input_signature=specs, autograph=False).get_concrete_function()

    def submit(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Runs one request in the next batch; returns its rows of every output.

        Args:
            inputs: Input alias -> array-like, every input with the same size of axis 0.

        Returns:
            Output alias -> the request's rows of that output.

        Raises:
            ServingError: INVALID_ARGUMENT for missing, extra or mistyped inputs, inputs with
                different batch sizes or more rows than ``max_batch_size``; UNAVAILABLE when the
                queue is full or the batcher is closed; the model's error with its code.
        """
        call = self._call
        if self._closed or call is None:
            label = f" '{self._name}'" if self._name else ""
            raise errors.unavailable(f"batch scheduler{label} is closed (server shutting down)")
        if set(inputs) != set(self._aliases):
            raise errors.invalid_argument(f"batching expects the inputs {', '.join(self._aliases)}, got "
                                          f"{', '.join(sorted(inputs)) or 'none'}")
        sizes = {alias: np.shape(inputs[alias])[0] if np.ndim(inputs[alias]) else None for alias in self._aliases}
        if None in sizes.values() or len(set(sizes.values())) != 1:
            shown = ", ".join(f"{alias}: {size}" for alias, size in sizes.items())
            raise errors.invalid_argument(f"Batching Run() input tensors must have equal 0th-dimension size ({shown})")
        size = next(iter(sizes.values()))
        if size > self._max_batch_size:
            raise errors.invalid_argument(
                f"Task size {size} is larger than maximum input batch size {self._max_batch_size}")
        try:
            feeds = [tf.constant(inputs[alias], dtype=dtype) for alias, dtype in zip(self._aliases, self._dtypes)]
            if size == 0:
                result = self._function(**dict(zip(self._aliases, feeds)))
                return {alias: result[alias].numpy() for alias in self._outputs}
            values = call(*feeds)
        except tf.errors.OpError as e:
            raise _serving_error(e) from None
        except (TypeError, ValueError) as e:
            raise errors.invalid_argument(str(e)) from None
        rows, index = values[-_PROBE_OUTPUTS].numpy(), values[-1].numpy()
        if self._on_batch is not None and index[0] == 0:
            self._on_batch(int(rows[0]))
        return {alias: value.numpy() for alias, value in zip(self._outputs, values)}

    def close(self) -> None:
        """Refuses later requests (UNAVAILABLE) and drops the functions; running calls finish."""
        self._closed = True
        self._call = None
        self._function = None

    def __enter__(self) -> GraphBatcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
