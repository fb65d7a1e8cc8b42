"""gRPC servicers for ``tensorflow.serving.PredictionService`` and ``ModelService``.

Each method hands the request to :class:`~llm_tf.serving.inference.InferenceService` and turns
a :class:`~llm_tf.serving.errors.ServingError` into ``context.abort(code, message)``; anything
else is logged and answered ``INTERNAL``.
"""

from collections.abc import Callable
from concurrent import futures

import grpc
from absl import logging
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from llm_tf.errors import ConfigError
from llm_tf.serving import errors
from llm_tf.serving.ports import check_port_free


def _serve(context: grpc.ServicerContext, call: Callable, request):
    """Runs ``call(request)``; aborts the RPC with the error's code and message on failure."""
    try:
        return call(request)
    except errors.ServingError as e:
        context.abort(e.code, e.message)
    except Exception as e:  # a bug: keep the server up, report INTERNAL with the cause.
        logging.exception("unexpected error serving %s", type(request).__name__)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over an ``InferenceService``.

    Args:
        service: The :class:`~llm_tf.serving.inference.InferenceService`.
    """

    def __init__(self, service):
        self._service = service

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        """PredictionService.Predict."""
        return _serve(context, self._service.predict, request)

    def Classify(self, request, context):  # noqa: N802
        """PredictionService.Classify."""
        return _serve(context, self._service.classify, request)

    def Regress(self, request, context):  # noqa: N802
        """PredictionService.Regress."""
        return _serve(context, self._service.regress, request)

    def MultiInference(self, request, context):  # noqa: N802
        """PredictionService.MultiInference."""
        return _serve(context, self._service.multi_inference, request)

    def GetModelMetadata(self, request, context):  # noqa: N802
        """PredictionService.GetModelMetadata."""
        return _serve(context, self._service.get_model_metadata, request)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService`` over an ``InferenceService``.

    Args:
        service: The :class:`~llm_tf.serving.inference.InferenceService`.
    """

    def __init__(self, service):
        self._service = service

    def GetModelStatus(self, request, context):  # noqa: N802
        """ModelService.GetModelStatus."""
        return _serve(context, self._service.get_model_status, request)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        """ModelService.HandleReloadConfigRequest."""
        return _serve(context, self._service.reload_config, request)


def make_grpc_server(service, host: str, port: int, max_threads: int = 16,
                     max_message_bytes: int = 64 * 1024 * 1024) -> tuple[grpc.Server, int]:
    """Builds (does not start) a gRPC server with both services bound to ``host:port``.

    Args:
        service: The :class:`~llm_tf.serving.inference.InferenceService`.
        host: Interface to bind (``localhost``, ``0.0.0.0``...).
        port: Port; 0 picks a free one.
        max_threads: Worker threads (concurrent RPCs).
        max_message_bytes: Largest request and response message.

    Returns:
        (the server, the bound port).

    Raises:
        ConfigError: The address cannot be bound (port in use, bad host).
    """
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
                         options=options, maximum_concurrent_rpcs=None)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(service), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if port:
        check_port_free(host, port, "gRPC")
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise ConfigError(f"gRPC: cannot bind {address}: {e}") from None
    if not bound:
        raise ConfigError(f"gRPC: cannot bind {address} (port in use?)")
    return server, bound
