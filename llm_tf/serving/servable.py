"""One loaded version of a model: a TF2 SavedModel, its signatures and TF Serving's input checks.

A :class:`Servable` loads ``<base_path>/<version>`` with ``tf.saved_model.load`` and reads the
``SignatureDef`` map of the ``serve`` MetaGraphDef from ``saved_model.pb`` (what metadata
reports and what decides which API may call a signature). :meth:`Servable.run` validates a
request as TF Serving's Predict does before calling the signature's concrete function, and
optionally routes it through a batcher: :class:`~llm_tf.serving.batching.BatchScheduler`
(``batching_engine="python"``) or, for signatures it can batch,
:class:`~llm_tf.serving.graph_batching.GraphBatcher` (``"tensorflow"``: the ``BatchFunction`` op).

In-flight requests hold the servable with :meth:`acquire`/:meth:`release`; :meth:`close` waits
for them before releasing the model, so an unload never breaks a running request.
"""

import os
import threading
import time
from collections.abc import Callable, Sequence

import grpc
import numpy as np
import tensorflow as tf

# Registers tensorflow-text's ops (tokenizers, normalizers) in this process: SavedModels
# exported by llm_export tokenize inside the graph and cannot load without them. The real
# tensorflow_model_server links the same ops into its binary.
import tensorflow_text  # noqa: F401
from absl import logging
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from llm_tf.serving import errors, graph_batching, tensors
from llm_tf.serving.batching import BatchScheduler

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords
SERVE_TAG = "serve"


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """Reads the signature map of the ``serve`` MetaGraphDef of the SavedModel at ``path``.

    Args:
        path: A SavedModel directory.

    Returns:
        Signature name -> ``SignatureDef`` (with ``method_name``, input/output ``TensorInfo``).

    Raises:
        ServingError: DATA_LOSS when ``saved_model.pb`` cannot be parsed, NOT_FOUND when it is
            missing or has no ``serve`` graph.
    """
    pb_path = os.path.join(path, "saved_model.pb")
    try:
        with (tf.io.gfile.GFile(pb_path, "rb") if "://" in pb_path else open(pb_path, "rb")) as f:  # or a bucket
            data = f.read()
    except tf.errors.OpError as e:
        raise errors.not_found(f"{pb_path}: cannot read: {e.message.strip().splitlines()[0]}") from None
    except OSError as e:
        raise errors.not_found(f"{pb_path}: cannot read: {e.strerror or e}") from None
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError (a Message.Error) on garbage.
        raise errors.ServingError(grpc.StatusCode.DATA_LOSS, f"{pb_path}: not a SavedModel proto: {e}") from None
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise errors.not_found(f"{pb_path}: no MetaGraphDef with the tag {SERVE_TAG!r}")


def _join(names) -> str:
    return ",".join(sorted(names))


class Servable:
    """One loaded model version.

    Args:
        name: The model name.
        version: The version number (the directory name).
        path: The version directory (a SavedModel).
        batching: Batching parameters (a ``BatchingSpec``); None runs every request on its own.
        on_batch: Called with each batch's size when batching (metrics).
        batching_engine: ``python`` (our scheduler) or ``tensorflow`` (TensorFlow's
            ``BatchFunction`` op for the signatures whose inputs have fixed shapes after the batch
            axis; the others use ours). See ``llm_tf.serving.graph_batching``.

    Attributes:
        name, version, path: As given.
        signature_defs: Signature name -> ``SignatureDef`` from ``saved_model.pb``.

    Raises:
        ServingError: The SavedModel cannot be read or loaded (the code says why).
        ValueError: An unknown ``batching_engine``.
    """

    def __init__(self, name: str, version: int, path: str, batching=None,
                 on_batch: Callable[[int], None] | None = None, batching_engine: str = "python"):
        graph_batching.check_engine(batching_engine, "batching_engine")
        self.name = name
        self.version = int(version)
        self.path = path
        self._model = None
        self.signature_defs, self._functions = self._load_model(path)
        # Per signature, what every request is checked against, read from the protos once:
        # (input aliases, [(alias, dtype, shape)], all output aliases sorted).
        self._checks = {
            sig_name: (frozenset(signature.inputs),
                       [(alias, info.dtype, tensors.shape_of(info.tensor_shape))
                        for alias, info in sorted(signature.inputs.items())],
                       sorted(signature.outputs))
            for sig_name, signature in self.signature_defs.items()
        }
        self._lock = threading.Condition()
        self._in_flight = 0
        self._closing = False
        self._schedulers = {}
        if batching is not None:
            for sig_name in self._functions:
                if self._batchable(sig_name):
                    self._schedulers[sig_name] = self._scheduler(sig_name, batching, on_batch, batching_engine)

    def _scheduler(self, sig_name: str, batching, on_batch: Callable[[int], None] | None, engine: str):
        """The batcher of one batchable signature.

        Args:
            sig_name: The signature.
            batching: The ``BatchingSpec``.
            on_batch: Called with each batch's size.
            engine: ``python`` or ``tensorflow``.

        Returns:
            A ``GraphBatcher`` for ``tensorflow`` where the op can batch the signature, else a
            ``BatchScheduler``; both have ``submit`` and ``close``.
        """
        label = f"{self.name}-{self.version}-{sig_name}"
        if engine == "tensorflow":
            batcher = graph_batching.graph_batcher(self._functions[sig_name], batching, label, on_batch)
            if batcher is not None:
                return batcher
        return BatchScheduler(lambda inputs, _sig=sig_name: self._execute(_sig, inputs),
                              batching, name=label, on_batch=on_batch)

    def _load_model(self, path: str) -> tuple[dict, dict]:
        """Loads the SavedModel (a subclass loads another format: ``tflite_servable``).

        Args:
            path: The version directory.

        Returns:
            (signature name -> ``SignatureDef``, signature name -> what :meth:`_execute` calls).

        Raises:
            ServingError: The SavedModel cannot be read or loaded.
        """
        signature_defs = read_signature_defs(path)
        try:
            self._model = tf.saved_model.load(path, tags=[SERVE_TAG])
        except tf.errors.OpError as e:
            raise errors.from_code(e.error_code, f"{path}: failed to load SavedModel: {e.message}") from None
        except (ValueError, OSError, RuntimeError) as e:
            raise errors.internal(f"{path}: failed to load SavedModel: {e}") from None
        return signature_defs, dict(self._model.signatures)

    def _batchable(self, signature_name: str) -> bool:
        """Whether every input of the signature has a variable batch dimension (axis 0)."""
        signature = self.signature_defs.get(signature_name)
        if signature is None or not signature.inputs:
            return False
        for info in signature.inputs.values():
            shape = tensors.shape_of(info.tensor_shape)
            if shape is not None and (len(shape) == 0 or shape[0] != -1):
                return False
        return True

    # ------------------------------------------------------------------------ lifetime
    def acquire(self) -> bool:
        """Counts one more in-flight request; False once :meth:`close` has begun."""
        with self._lock:
            if self._closing:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        """Ends an in-flight request counted by :meth:`acquire`."""
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    @property
    def in_flight(self) -> int:
        """How many requests are running on this servable."""
        with self._lock:
            return self._in_flight

    def close(self, timeout: float = 60.0) -> None:
        """Waits (up to ``timeout`` seconds) for in-flight requests, then releases the model.

        Args:
            timeout: Seconds to wait for in-flight requests before releasing anyway.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            while self._in_flight > 0 and time.monotonic() < deadline:
                self._lock.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            if self._in_flight:
                logging.warning("%s version %d: releasing with %d requests still running",
                                self.name, self.version, self._in_flight)
        for scheduler in self._schedulers.values():
            scheduler.close()
        self._schedulers = {}
        self._functions = {}
        self._model = None

    # ----------------------------------------------------------------------- signatures
    def method_name(self, signature_name: str) -> str | None:
        """Returns the signature's ``method_name``, or None for an unknown signature."""
        signature = self.signature_defs.get(signature_name)
        return None if signature is None else signature.method_name

    def predict_signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """Looks up a signature as TF Serving's Predict does.

        Args:
            signature_name: The requested name; empty means ``serving_default``.

        Returns:
            The ``SignatureDef``.

        Raises:
            ServingError: FAILED_PRECONDITION for an unknown name; INTERNAL for a method name
                Predict cannot run.
        """
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(name)
        if signature is None:
            raise errors.failed_precondition(f'Serving signature key "{name}" not found.')
        if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise errors.internal(
                f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
        return signature

    # ------------------------------------------------------------------------------ run
    def run(self, signature_name: str, inputs: dict[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Runs a signature with TF Serving's Predict validation.

        Args:
            signature_name: The signature; empty means ``serving_default``.
            inputs: Input alias -> array (strings as ``bytes`` object arrays).
            output_filter: Output aliases to return; empty returns all.

        Returns:
            Output alias -> array.

        Raises:
            ServingError: FAILED_PRECONDITION (unknown signature), INVALID_ARGUMENT (input keys,
                dtype or shape, unknown or repeated output alias), or the model's own error.
        """
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.predict_signature(name)
        expected, checks, all_outputs = self._checks[name]
        self._check_inputs(expected, checks, inputs)
        outputs_wanted = self._check_output_filter(signature, output_filter) if output_filter else all_outputs
        scheduler = self._schedulers.get(name)
        if scheduler is not None and tensors.batch_size(inputs) is not None:
            outputs = scheduler.submit(inputs)
        else:
            outputs = self._execute(name, inputs)
        return {alias: outputs[alias] for alias in outputs_wanted}

    @staticmethod
    def _check_inputs(expected: frozenset, checks: list, inputs: dict[str, np.ndarray]) -> None:
        """Checks input keys, then each input's dtype and shape (``checks``: alias, dtype, shape)."""
        sent = set(inputs)
        if expected != sent:
            raise errors.invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} len({{{_join(sent)}}}) != "
                f"len({{{_join(expected)}}}). Sent extra: {{{_join(sent - expected)}}}. "
                f"Missing but required: {{{_join(expected - sent)}}}.")
        for alias, dtype, shape in checks:
            tensors.check_dtype(alias, inputs[alias], dtype)
            tensors.check_shape(alias, inputs[alias], shape)

    @staticmethod
    def _check_output_filter(signature: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]) -> list[str]:
        seen: list[str] = []
        for alias in output_filter:
            if alias not in signature.outputs:
                raise errors.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{_join(signature.outputs)}}}.")
            if alias in seen:
                raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen or sorted(signature.outputs)

    def _execute(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calls the signature's concrete function (no validation)."""
        function = self._functions.get(signature_name)
        if function is None:
            raise errors.unavailable(f"{self.name} version {self.version} is unloaded")
        try:
            feeds = {alias: tf.constant(value) for alias, value in inputs.items()}
            result = function(**feeds)
        except tf.errors.OpError as e:
            raise errors.from_code(e.error_code, e.message) from None
        except (TypeError, ValueError) as e:
            raise errors.invalid_argument(str(e)) from None
        return {alias: value.numpy() for alias, value in result.items()}

    # --------------------------------------------------------------------------- warm-up
    def warmup_records(self) -> list[prediction_log_pb2.PredictionLog]:
        """Reads ``assets.extra/tf_serving_warmup_requests`` (none when the file is absent).

        Returns:
            The ``PredictionLog`` records, in file order.

        Raises:
            ServingError: DATA_LOSS for a file that is not TFRecords; INVALID_ARGUMENT for a
                record that is not a ``PredictionLog`` or more than 1000 records.
        """
        path = os.path.join(self.path, WARMUP_FILE)
        if not tf.io.gfile.exists(path):  # a local path or a bucket
            return []
        records = []
        try:
            for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
                if len(records) >= MAX_WARMUP_RECORDS:
                    raise errors.invalid_argument(
                        f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
                log = prediction_log_pb2.PredictionLog()
                try:
                    log.ParseFromString(raw)
                except Exception:
                    raise errors.invalid_argument(f"Failed to parse warmup record {len(records)} from {path}") from None
                records.append(log)
        except tf.errors.OpError as e:
            raise errors.ServingError(
                grpc.StatusCode.DATA_LOSS,
                f"{e.message}. Please verify your warmup data is in TFRecord format.") from None
        return records

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, version={self.version}, path={self.path!r})"
