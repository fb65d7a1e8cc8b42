"""A gRPC client for TF Serving's PredictionService and ModelService (and the embedded server).

It speaks only the official ``tensorflow-serving-api`` protos, so the same code works against
``tensorflow_model_server`` and ``llm_serve``. Every call has a deadline; a call that fails with
``UNAVAILABLE`` (server starting, restarting, overloaded) is retried with exponential back-off
and jitter within that deadline; any other failure raises :class:`RemoteError` with the
server's code and message.

Example:
    >>> with ServingClient("localhost:8500") as client:            # doctest: +SKIP
    ...     client.wait_until_available("sst2", timeout=60)
    ...     client.predict_texts("sst2", ["a gripping, funny film"])
    [{'scores': [0.03, 0.97], 'label_ids': 1, 'labels': 'positive'}]
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from llm_tf.errors import ConfigError
from llm_tf.serving.client_values import make_example, split_rows, to_tensor_proto
from llm_tf.serving.errors import ServingError

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RemoteError(ServingError):
    """A call failed on the server (or could not reach it); carries the server's code and message.

    ``str()`` is one line: ``model 'NAME': CODE: server message``.

    Attributes:
        code: The ``grpc.StatusCode`` the server answered.
        message: The server's message, as sent.
        model: The model the call was about.
    """

    def __init__(self, code: grpc.StatusCode, message: str, model: str):
        super().__init__(code, message)
        self.model = model

    def __str__(self) -> str:
        return f"model '{self.model}': {self.code.name}: {self.message}"


class ServerUnreachableError(RemoteError):
    """No connection to the server could be made (down, wrong address, DNS failure).

    ``str()`` is ``cannot reach TARGET: reason``.

    Attributes:
        target: The ``host:port`` that could not be reached.
    """

    def __init__(self, message: str, model: str, target: str):
        super().__init__(grpc.StatusCode.UNAVAILABLE, message, model)
        self.target = target

    def __str__(self) -> str:
        return f"cannot reach {self.target}: {self.message}"


class ServingClient:
    """A client of one TF Serving (or ``llm_serve``) gRPC endpoint.

    Args:
        target: ``host:port`` of the gRPC API (TF Serving's ``--port``, 8500 by default).
        timeout: Seconds each call may take in total, retries and back-off included.
        retries: How many times a call failing with ``UNAVAILABLE`` is retried.
        backoff_seconds: The first back-off; it doubles at each retry, with +-50% jitter.
        max_message_bytes: Largest request/response message (TF Serving's gRPC limit is set
            with ``--grpc_max_message_size`` style channel args on the server).
        secure: Use TLS with the system's root certificates.

    Raises:
        ValueError: ``timeout`` <= 0 or ``retries`` < 0.
    """

    def __init__(
        self,
        target: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.1,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        secure: bool = False,
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.target = target
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff_seconds = float(backoff_seconds)
        options = [
            ("grpc.max_send_message_length", int(max_message_bytes)),
            ("grpc.max_receive_message_length", int(max_message_bytes)),
            # Reconnect soon after a failed connection, so retries and waiting for a server
            # that is (re)starting see it come up.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        if secure:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._batch_limits: dict[str, int] = {}  # model -> max_batch_size the server told us

    # ------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Closes the channel; later calls fail."""
        self._channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --------------------------------------------------------------------------- calling
    def _call(self, rpc: Callable, request: Any, model: str, timeout: float | None = None,
              idempotent: bool = True) -> Any:
        """Calls ``rpc`` with a deadline, retrying ``UNAVAILABLE`` for idempotent calls."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", model)
            try:
                return rpc(request, timeout=remaining)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                if code == grpc.StatusCode.UNAVAILABLE and idempotent and attempt < self.retries:
                    pause = self.backoff_seconds * (2 ** attempt) * random.uniform(0.5, 1.5)
                    if time.monotonic() + pause < deadline:
                        time.sleep(pause)
                        attempt += 1
                        continue
                raise self._error(code, details, model) from None

    def _error(self, code: grpc.StatusCode, details: str, model: str) -> RemoteError:
        if code == grpc.StatusCode.UNAVAILABLE and not self._connected():
            return ServerUnreachableError(details, model, self.target)
        return RemoteError(code, details, model)

    def _connected(self) -> bool:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=0.1)
            return True
        except grpc.FutureTimeoutError:
            return False

    @staticmethod
    def _model_spec(model: str, signature_name: str | None = None, version: int | None = None,
                    version_label: str | None = None) -> model_pb2.ModelSpec:
        if not model:
            raise ConfigError("model name is empty")
        if version is not None and version_label:
            raise ConfigError(f"model '{model}': give a version ({version}) or a version label "
                              f"({version_label!r}), not both")
        spec = model_pb2.ModelSpec(name=model)
        if signature_name is not None:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.value = int(version)
        elif version_label:
            spec.version_label = version_label
        return spec

    # ----------------------------------------------------------------------- prediction
    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        signature_name: str = "serving_default",
        version: int | None = None,
        version_label: str | None = None,
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """Calls ``Predict`` on one batch of inputs.

        Args:
            model: The model name.
            inputs: Input name to array-like (numpy arrays keep their dtype; python ``str``
                become ``DT_STRING``).
            signature_name: The SignatureDef to run.
            version: A specific version (default: the latest the server serves).
            version_label: A version label such as ``"stable"``; exclusive with ``version``.
            output_filter: Only these outputs (default: all).

        Returns:
            Output name to numpy array (strings as ``object`` arrays of ``bytes``).

        Raises:
            ConfigError: Both ``version`` and ``version_label``, or an input that is not a tensor.
            RemoteError: The server's error (``ServerUnreachableError`` when it cannot be reached).
        """
        request = predict_pb2.PredictRequest(
            model_spec=self._model_spec(model, signature_name, version, version_label),
            output_filter=list(output_filter),
        )
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(to_tensor_proto(name, value))
        response = self._call(self._prediction.Predict, request, model)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def predict_texts(
        self,
        model: str,
        texts: Iterable[str],
        batch_size: int = 64,
        signature_name: str = "serving_default",
        text_pairs: Iterable[str] | None = None,
        version: int | None = None,
        version_label: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs a raw-text signature on many texts, ``batch_size`` texts per request.

        Args:
            model: The model name.
            texts: The texts (input ``text``).
            batch_size: Texts per ``Predict`` request (keep it at or below the server's
                ``max_batch_size`` when server-side batching is on).
            signature_name: The SignatureDef to run.
            text_pairs: Second texts of sentence pairs (input ``text_pair``), one per text.
            version: A specific version.
            version_label: A version label; exclusive with ``version``.

        Returns:
            One dict per text, in order: output name to python value (strings decoded, arrays
            as lists; NER outputs cut to the text's words). When the server refuses a request
            as larger than its ``max_batch_size`` (server-side batching), the texts are resent
            in requests of that size.

        Raises:
            ConfigError: ``batch_size`` < 1, or ``text_pairs`` of another length than ``texts``.
            RemoteError: The server's error.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        pairs = None if text_pairs is None else list(text_pairs)
        if pairs is not None and len(pairs) != len(texts):
            raise ConfigError(f"text_pairs has {len(pairs)} entries but texts has {len(texts)}")
        results: list[dict[str, Any]] = []
        start, size = 0, min(batch_size, self._batch_limits.get(model, batch_size))
        while start < len(texts):
            chunk = texts[start:start + size]
            inputs: dict[str, Any] = {"text": np.array([t.encode("utf-8") for t in chunk], dtype=object)}
            if pairs is not None:
                inputs["text_pair"] = np.array([t.encode("utf-8") for t in pairs[start:start + size]], dtype=object)
            try:
                outputs = self.predict(model, inputs, signature_name=signature_name, version=version,
                                       version_label=version_label)
            except RemoteError as e:
                limit = _server_batch_limit(e)
                if limit is not None and 0 < limit < len(chunk):
                    # The server's max_batch_size is smaller: resend (and remember) smaller requests.
                    size = self._batch_limits[model] = limit
                    continue
                raise
            try:
                results.extend(split_rows(outputs, len(chunk)))
            except ServingError as e:
                raise RemoteError(e.code, e.message, model) from None
            start += len(chunk)
        return results

    def classify(
        self,
        model: str,
        examples: Sequence[Mapping[str, Any]],
        signature_name: str = "classify",
        version: int | None = None,
        version_label: str | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Calls ``Classify`` on ``tf.train.Example`` s built from dicts.

        Args:
            model: The model name.
            examples: One dict per example, feature name to value(s) (see
                :func:`~llm_tf.serving.client_values.make_example`); e.g. ``[{"text": "a fine film"}]``.
            signature_name: A signature whose method is ``tensorflow/serving/classify``.
            version: A specific version.
            version_label: A version label; exclusive with ``version``.

        Returns:
            Per example, its ``(label, score)`` pairs in the order the model returns them.

        Raises:
            ConfigError: A feature value of an unsupported type, or both version and label.
            RemoteError: The server's error.
        """
        request = classification_pb2.ClassificationRequest(
            model_spec=self._model_spec(model, signature_name, version, version_label),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=[make_example(e) for e in examples])),
        )
        response = self._call(self._prediction.Classify, request, model)
        return [[(c.label, float(c.score)) for c in result.classes] for result in response.result.classifications]

    # ------------------------------------------------------------------------- metadata
    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        """Calls ``GetModelMetadata`` and decodes the signatures.

        Args:
            model: The model name.
            version: A specific version (default: the latest).

        Returns:
            ``{"name", "version", "signatures": {name: {"method_name", "inputs", "outputs"}}}``,
            where inputs/outputs map a name to ``{"dtype": "DT_STRING", "shape": [-1]}``
            (``shape`` is None for an unknown rank). ``__saved_model_init_op`` is left out.

        Raises:
            RemoteError: The server's error.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._model_spec(model, version=version), metadata_field=["signature_def"]
        )
        response = self._call(self._prediction.GetModelMetadata, request, model)
        signatures: dict[str, Any] = {}
        if "signature_def" in response.metadata:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            for name, signature in sorted(signature_map.signature_def.items()):
                if name.startswith("__saved_model"):
                    continue  # __saved_model_init_op: SavedModel plumbing, not callable
                signatures[name] = {
                    "method_name": signature.method_name,
                    "inputs": {k: _tensor_info(v) for k, v in sorted(signature.inputs.items())},
                    "outputs": {k: _tensor_info(v) for k, v in sorted(signature.outputs.items())},
                }
        spec = response.model_spec
        return {
            "name": spec.name,
            "version": spec.version.value if spec.HasField("version") else None,
            "signatures": signatures,
        }

    def status(self, model: str, version: int | None = None) -> list[dict[str, Any]]:
        """Calls ``GetModelStatus``.

        Args:
            model: The model name.
            version: Only this version (default: all versions the server knows).

        Returns:
            One dict per version: ``{"version", "state", "error_code", "error_message"}`` with
            ``state`` one of ``START``, ``LOADING``, ``AVAILABLE``, ``UNLOADING``, ``END``.

        Raises:
            RemoteError: The server's error (``NOT_FOUND`` for an unknown model).
        """
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec(model, version=version))
        response = self._call(self._models.GetModelStatus, request, model)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [
            {
                "version": status.version,
                "state": states.Name(status.state),
                "error_code": error_codes_pb2.Code.Name(status.status.error_code),
                "error_message": status.status.error_message,
            }
            for status in response.model_version_status
        ]

    def wait_until_available(self, model: str, timeout: float, poll_seconds: float = 0.2) -> int:
        """Waits until some version of ``model`` is ``AVAILABLE``.

        The server may be starting (``UNAVAILABLE``, unreachable) or still loading the model
        (``NOT_FOUND``, state ``LOADING``); both are waited out.

        Args:
            model: The model name.
            timeout: Seconds to wait at most.
            poll_seconds: Pause between two status calls.

        Returns:
            The highest available version.

        Raises:
            RemoteError: ``DEADLINE_EXCEEDED`` after ``timeout`` (naming the last state or error
                seen), or any other server error at once.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"no version AVAILABLE after {timeout:g}s (last: {last})", model)
            try:
                statuses = self._call(self._models.GetModelStatus,
                                      get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec(model)),
                                      model, timeout=min(remaining, self.timeout))
            except RemoteError as e:
                if e.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                last = f"{e.code.name}: {e.message}"
            else:
                available = [s.version for s in statuses.model_version_status
                             if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE]
                if available:
                    return max(available)
                last = ", ".join(
                    f"version {s.version} "
                    f"{get_model_status_pb2.ModelVersionStatus.State.Name(s.state)}"
                    for s in statuses.model_version_status
                ) or "no versions"
            time.sleep(max(0.0, min(poll_seconds, deadline - time.monotonic())))


_BATCH_LIMIT = re.compile(r"Task size \d+ is larger than maximum input batch size (\d+)")


def _server_batch_limit(error: RemoteError) -> int | None:
    """The server's max_batch_size when ``error`` is TF Serving's "task too large" refusal."""
    if error.code != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    match = _BATCH_LIMIT.search(error.message)
    return int(match.group(1)) if match else None


def _tensor_info(info) -> dict[str, Any]:
    """A TensorInfo as ``{"dtype": "DT_...", "shape": [dims] or None}``."""
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"dtype": types_pb2.DataType.Name(info.dtype), "shape": shape}
