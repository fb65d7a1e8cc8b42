"""InfraValidator: loads the SavedModel in the embedded server and replays its warm-up requests."""

import os

import tensorflow as tf

from llm_tf import io_utils
from llm_tf.io_utils import atomic_write_json
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.exporter import version_dir

INFRA_BLESSED_FILE, INFRA_NOT_BLESSED_FILE = "INFRA_BLESSED", "INFRA_NOT_BLESSED"


def replay_warmup(client, model: str, path: str) -> int:
    """Sends every request of a warm-up file through ``client``; returns how many were sent.

    Raises:
        RemoteError: The server refused one (the serving error, with its code).
    """
    from llm_tf.export.warmup import read_warmup

    sent = 0
    for log in read_warmup(path):
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            client.predict(model, inputs, signature_name=request.model_spec.signature_name or "serving_default")
        elif kind == "classify_log":
            request = log.classify_log.request
            examples = [{name: list(feature.bytes_list.value) for name, feature in example.features.feature.items()}
                        for example in request.input.example_list.examples]
            client.classify(model, examples, signature_name=request.model_spec.signature_name or "classify")
        else:
            continue
        sent += 1
    return sent


class InfraValidator(Component):
    """Serves the candidate with :class:`llm_tf.serving.server.EmbeddedServer` on free ports and
    sends it its warm-up requests with :class:`llm_tf.serving.client.ServingClient`.

    A failure to load or to answer is recorded as ``INFRA_NOT_BLESSED`` (the run goes on and the
    Pusher refuses); only unexpected errors fail the component.

    Args:
        saved_model: Exporter's ``saved_model``.
        timeout_seconds: How long loading may take.
        name: Component name.
    """

    INPUTS = {"saved_model": artifacts.SAVED_MODEL}
    OUTPUTS = {"infra_blessing": artifacts.INFRA_BLESSING}

    def __init__(self, saved_model: OutputRef, timeout_seconds: float = 120.0, name: str | None = None):
        super().__init__(name, {"saved_model": saved_model}, {"timeout_seconds": timeout_seconds})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Starts the server, replays the warm-up, stops it; writes the verdict."""
        from llm_tf.errors import LlmTfError
        from llm_tf.export.warmup import WARMUP_FILE
        from llm_tf.serving.client import ServingClient
        from llm_tf.serving.server import EmbeddedServer, ServerOptions

        saved_model = context.inputs["saved_model"]
        model = saved_model.properties.get("model_name") or "model"
        warmup = os.path.join(version_dir(saved_model), WARMUP_FILE)
        timeout = context.properties["timeout_seconds"]
        server = EmbeddedServer(ServerOptions(host="localhost", port=0, rest_api_port=0, model_name=model,
                                              model_base_path=saved_model.uri, file_system_poll_wait_seconds=0,
                                              ready_timeout=timeout))
        sent, reason = 0, ""
        try:
            server.start()
            with ServingClient(f"localhost:{server.grpc_port}", timeout=timeout) as client:
                client.wait_until_available(model, timeout)
                if io_utils.isfile(warmup):
                    sent = replay_warmup(client, model, warmup)
                else:
                    client.predict_texts(model, ["infra validation"])
                    sent = 1
        except LlmTfError as e:
            reason = f"{type(e).__name__}: {e}"
        finally:
            server.stop(grace=0)
        blessed = not reason
        verdict = {"blessed": blessed, "requests": sent, "reason": reason or f"loaded and answered {sent} requests"}
        marker = INFRA_BLESSED_FILE if blessed else INFRA_NOT_BLESSED_FILE
        atomic_write_json(os.path.join(context.output_dirs["infra_blessing"], marker), verdict)
        context.log(("INFRA BLESSED: " if blessed else "INFRA NOT BLESSED: ") + verdict["reason"])
        return ExecutionResult({"infra_blessing": verdict}, {"requests": sent, "blessed": blessed})
