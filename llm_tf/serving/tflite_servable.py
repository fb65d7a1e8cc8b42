"""A version served from its ``model.tflite`` (``--prefer_tflite_model``), as ``tensorflow_model_server`` does.

TF Serving (``saved_model_bundle_factory.cc``, ``tflite_session.cc``; EXPERIMENTAL there): with
``--prefer_tflite_model`` a version directory holding ``model.tflite`` is loaded from that file
instead of ``saved_model.pb`` (which is then not read at all); without the file the SavedModel is
loaded. The signatures are the ``SignatureDef`` map stored in the flatbuffer's metadata entry
``signature_defs_metadata`` (a flexbuffer map: name -> serialized ``SignatureDef`` whose tensor
names are TFLite tensor names; ``llm_export --tflite_model`` writes it); a file without one gets
a generated ``serving_default`` (inputs/outputs of the main subgraph, keyed by tensor name
without ``:0``, method predict). Only builtin ops (and ``ParseExample``) resolve: a file with
tensorflow-text custom ops does not load in the real server, so it does not load here either.

The pool: ``num_tflite_pools`` interpreters (one thread each, XNNPACK), a request takes a free
one (the one already sized for its shapes if there is one) and resizes it when its shapes differ.
``num_tflite_interpreters_per_pool`` > 1 turns on TF Serving's in-session batching (concurrent
requests merged, ``num_tflite_pools`` batch threads, no timeout) unless ``--enable_batching``
already batches. Requests are checked against the signature as for a SavedModel (a fixed
sequence length in the file is a fixed dimension of the input).
"""

import math
import os
import threading
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from llm_tf.serving import errors
from llm_tf.serving.config import BatchingSpec
from llm_tf.serving.servable import DEFAULT_SIGNATURE, PREDICT_METHOD, Servable

#: The file TF Serving loads with ``--prefer_tflite_model`` (its ``kTfLiteModelFilename``).
TFLITE_MODEL_FILE = "model.tflite"
#: The flatbuffer metadata entry holding the ``SignatureDef`` map (TFLite's ``kSignatureDefsMetadataName``).
SIGNATURE_DEFS_ENTRY = "signature_defs_metadata"
#: TF Serving's ``internal::kInitialBatchSize``: its in-session batch scheduler's ``max_batch_size``.
INITIAL_BATCH_SIZE = 500


def has_tflite_model(path: str) -> bool:
    """Whether the version directory holds ``model.tflite``."""
    return tf.io.gfile.exists(os.path.join(path, TFLITE_MODEL_FILE))


def read_signature_def_metadata(content: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    """Reads the ``signature_defs_metadata`` entry of a ``.tflite`` flatbuffer (empty dict without one).

    Args:
        content: The file's bytes.

    Returns:
        Signature name -> ``SignatureDef`` (tensor names are TFLite tensor names).

    Raises:
        ServingError: INVALID_ARGUMENT for an entry that does not parse.
    """
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() and entry.Name().decode("utf-8") == SIGNATURE_DEFS_ENTRY:
                data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
                root = flexbuffers.GetRoot(data).AsMap
                defs = {}
                for key, value in zip(root.Keys, root.Values, strict=True):
                    signature = meta_graph_pb2.SignatureDef()
                    signature.ParseFromString(value.AsStringBytes)
                    defs[key.AsKey] = signature
                return defs
    except Exception as e:  # garbage metadata: the real server fails the load likewise
        raise errors.invalid_argument(f"Invalid SignatureDefs found in TfLite model: {e}") from None
    return {}


def _legacy_name(name: str) -> str:
    return name.split(":", 1)[0]


class _Interpreter:
    """One interpreter of the pool and the input shapes it is allocated for."""

    def __init__(self, content: bytes):
        try:
            from ai_edge_litert import interpreter as litert

            self.interpreter = litert.Interpreter(model_content=content, num_threads=1,
                                                  experimental_op_resolver_type=litert.OpResolverType.AUTO)
        except ImportError:  # pragma: no cover - ai_edge_litert is a dependency; tf.lite is the fallback
            self.interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
        self.interpreter.allocate_tensors()
        self.shapes: tuple = tuple(tuple(d["shape"]) for d in self.interpreter.get_input_details())


class InterpreterPool:
    """``size`` interpreters of one model; :meth:`run` borrows one (blocking while none is free).

    Args:
        content: The ``.tflite`` bytes.
        size: Number of interpreters (at least 1).

    Raises:
        ServingError: INVALID_ARGUMENT when the model cannot be built (e.g. custom ops).
    """

    def __init__(self, content: bytes, size: int):
        try:
            self._free = [_Interpreter(content) for _ in range(max(1, size))]
        except (RuntimeError, ValueError) as e:
            raise errors.invalid_argument(
                f"Cannot build Interpreter from buffer: {str(e).strip().splitlines()[0]}") from None
        self.size = len(self._free)
        self._cond = threading.Condition()

    @property
    def first(self):
        """An interpreter to read tensor details from (not for running)."""
        return self._free[0].interpreter

    def run(self, feeds: list[tuple[int, np.ndarray]], fetches: list[tuple[str, int]]) -> dict[str, np.ndarray]:
        """Sets inputs (resizing when their shapes differ), invokes, reads outputs.

        Args:
            feeds: (input tensor index, value) in the interpreter's input order.
            fetches: (output alias, tensor index).

        Returns:
            Output alias -> a copy of the tensor.

        Raises:
            ServingError: INTERNAL when resizing or invoking fails.
        """
        shapes = tuple(value.shape for _, value in feeds)
        with self._cond:
            while not self._free:
                self._cond.wait()
            index = next((i for i, w in enumerate(self._free) if w.shapes == shapes), len(self._free) - 1)
            wrapper = self._free.pop(index)
        try:
            interpreter = wrapper.interpreter
            if wrapper.shapes != shapes:
                wrapper.shapes = ()  # unknown until allocation succeeds
                for tensor_index, value in feeds:
                    interpreter.resize_tensor_input(tensor_index, list(value.shape))
                interpreter.allocate_tensors()
                wrapper.shapes = shapes
            for tensor_index, value in feeds:
                interpreter.set_tensor(tensor_index, value)
            interpreter.invoke()
            return {alias: interpreter.get_tensor(tensor_index) for alias, tensor_index in fetches}
        except (RuntimeError, ValueError) as e:
            raise errors.internal(f"Failed to invoke TfLite interpreter: {str(e).strip().splitlines()[0]}") from None
        finally:
            with self._cond:
                self._free.append(wrapper)
                self._cond.notify()


def _generated_signature(interpreter) -> dict[str, meta_graph_pb2.SignatureDef]:
    """TF Serving's fallback: ``serving_default`` over the main subgraph's inputs and outputs."""
    signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for details, target in ((interpreter.get_input_details(), signature.inputs),
                            (interpreter.get_output_details(), signature.outputs)):
        for d in details:
            info = target[_legacy_name(d["name"])]
            info.name = d["name"]
            info.dtype = tf.as_dtype(d["dtype"]).as_datatype_enum
            for size in d.get("shape_signature", d["shape"]):
                info.tensor_shape.dim.add(size=int(size))
    return {DEFAULT_SIGNATURE: signature}


class TfLiteServable(Servable):
    """A model version served from ``<path>/model.tflite`` (same API as :class:`Servable`).

    Args:
        name, version, path, batching, on_batch: As :class:`Servable`.
        num_pools: Interpreters in the pool (TF Serving's ``--num_tflite_pools``; 0 means 1).
        interpreters_per_pool: TF Serving's ``--num_tflite_interpreters_per_pool``: above 1, concurrent
            requests are batched inside the servable (when ``batching`` is None).

    Raises:
        ServingError: The file cannot be read (NOT_FOUND), its signatures do not parse or name
            unknown tensors, or the interpreter cannot be built (INVALID_ARGUMENT).
    """

    def __init__(self, name: str, version: int, path: str, batching=None,
                 on_batch: Callable[[int], None] | None = None, num_pools: int = 1, interpreters_per_pool: int = 1):
        self._num_pools = max(1, int(num_pools))
        self._pool: InterpreterPool | None = None
        self._fetch_plan: dict[str, tuple[list, list]] = {}
        if batching is None and interpreters_per_pool > 1:
            batching = BatchingSpec(max_batch_size=math.ceil(INITIAL_BATCH_SIZE / interpreters_per_pool),
                                    batch_timeout_micros=0, num_batch_threads=self._num_pools,
                                    max_enqueued_batches=self._num_pools * 100)
        super().__init__(name, version, path, batching=batching, on_batch=on_batch)

    def _load_model(self, path: str) -> tuple[dict, dict]:
        file = os.path.join(path, TFLITE_MODEL_FILE)
        try:
            with tf.io.gfile.GFile(file, "rb") as f:
                content = f.read()
        except tf.errors.OpError as e:
            raise errors.not_found(f"{file}: cannot read: {e.message.strip().splitlines()[0]}") from None
        self._pool = InterpreterPool(content, self._num_pools)
        interpreter = self._pool.first
        signature_defs = read_signature_def_metadata(content) or _generated_signature(interpreter)
        inputs = {d["name"]: (i, d["index"]) for i, d in enumerate(interpreter.get_input_details())}
        outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        for sig_name, signature in signature_defs.items():
            feeds = sorted((inputs[self._known(inputs, info.name, sig_name, "input", alias)], alias)
                           for alias, info in signature.inputs.items())
            if len(feeds) != len(inputs):
                raise errors.invalid_argument(
                    f"Signature {sig_name} feeds {len(feeds)} of the TfLite model's {len(inputs)} inputs")
            fetches = [(alias, outputs[self._known(outputs, info.name, sig_name, "output", alias)])
                       for alias, info in signature.outputs.items()]
            self._fetch_plan[sig_name] = ([(alias, index) for (_, index), alias in feeds], fetches)
        return signature_defs, {sig_name: sig_name for sig_name in signature_defs}

    @staticmethod
    def _known(table: dict, name: str, sig_name: str, kind: str, alias: str) -> str:
        """A signature's tensor name as the file spells it (TF Serving's legacy ``:0``-less fallback)."""
        for candidate in (name, _legacy_name(name)):
            if candidate in table:
                return candidate
        raise errors.invalid_argument(
            f"Signature {kind} {alias} references an unknown tensor: Unknown tensor '{name}'. (signature {sig_name})")

    def predict_signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """As :meth:`Servable.predict_signature`; an unknown name's message lists the file's signatures."""
        try:
            return super().predict_signature(signature_name)
        except errors.ServingError as e:
            if (signature_name or DEFAULT_SIGNATURE) in self.signature_defs:
                raise
            raise errors.failed_precondition(
                f"{e.message} This version is served from {TFLITE_MODEL_FILE} (--prefer_tflite_model), whose "
                f"signatures are: {', '.join(sorted(self.signature_defs))}.") from None

    def _execute(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pool, plan = self._pool, self._fetch_plan.get(signature_name)
        if pool is None or plan is None:
            raise errors.unavailable(f"{self.name} version {self.version} is unloaded")
        feeds, fetches = plan
        return pool.run([(index, inputs[alias]) for alias, index in feeds], fetches)

    def close(self, timeout: float = 60.0) -> None:
        """As :meth:`Servable.close`; then drops the interpreters."""
        super().close(timeout)
        self._pool = None
        self._fetch_plan = {}

    def __repr__(self) -> str:
        return f"TfLiteServable({self.name!r}, version={self.version}, path={self.path!r})"


def servable_factory(prefer_tflite_model: bool, num_tflite_pools: int | None = None,
                     num_tflite_interpreters_per_pool: int = 1, batching_engine: str = "python") -> Callable:
    """What the model manager builds each version with, following TF Serving's TFLite flags.

    Args:
        prefer_tflite_model: Serve ``model.tflite`` where a version has one; False: always the SavedModel.
        num_tflite_pools: Interpreters per TFLite version; None: the CPU count (TF Serving's default).
        num_tflite_interpreters_per_pool: Above 1, in-servable batching (see the module docstring).
        batching_engine: A SavedModel version's batcher (``Servable``'s argument); a TFLite
            version always uses the Python scheduler (its signatures are not TensorFlow functions).

    Returns:
        A callable with :class:`Servable`'s constructor arguments.
    """
    if not prefer_tflite_model and batching_engine == "python":
        return Servable

    def saved_model(name: str, version: int, path: str, batching=None, on_batch=None) -> Servable:
        return Servable(name, version, path, batching=batching, on_batch=on_batch, batching_engine=batching_engine)

    if not prefer_tflite_model:
        return saved_model
    pools = (os.cpu_count() or 1) if num_tflite_pools is None else num_tflite_pools

    def build(name: str, version: int, path: str, batching=None, on_batch=None) -> Servable:
        if has_tflite_model(path):
            return TfLiteServable(name, version, path, batching=batching, on_batch=on_batch, num_pools=pools,
                                  interpreters_per_pool=num_tflite_interpreters_per_pool)
        return saved_model(name, version, path, batching=batching, on_batch=on_batch)

    return build


__all__ = ["TFLITE_MODEL_FILE", "SIGNATURE_DEFS_ENTRY", "TfLiteServable", "InterpreterPool", "has_tflite_model",
           "read_signature_def_metadata", "servable_factory"]
