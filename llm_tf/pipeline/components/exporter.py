"""Exporter: ``llm_export``'s library call; the artifact is a model base path holding version 1."""

import os

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef

#: The version the exported SavedModel has inside the artifact (``<uri>/1/``).
VERSION = 1


def version_dir(saved_model: artifacts.Artifact) -> str:
    """The SavedModel directory inside an Exporter artifact."""
    return os.path.join(saved_model.uri, str(saved_model.properties.get("version", VERSION)))


class Exporter(Component):
    """Exports the Trainer's best (or latest) checkpoint as a raw-text SavedModel with warm-up.

    Args:
        model: Trainer's ``model``.
        model_name: The serving model name (warm-up requests name it).
        checkpoint: ``best`` or ``latest``.
        warmup_requests: Eval texts in the warm-up file.
        tflite_model: ``none`` (default) or ``float32``/``float16``/``dynamic_int8``: also write the token form as
            ``model.tflite`` in the version (TF Serving's ``--prefer_tflite_model``; ``llm_export --tflite_model``).
            A property only when set, so existing pipelines keep their cache keys.
        name: Component name.
    """

    INPUTS = {"model": artifacts.MODEL}
    OUTPUTS = {"saved_model": artifacts.SAVED_MODEL}

    def __init__(self, model: OutputRef, model_name: str, checkpoint: str = "best", warmup_requests: int = 8,
                 name: str | None = None, tflite_model: str = "none"):
        properties = {"model_name": model_name, "checkpoint": checkpoint, "warmup_requests": warmup_requests}
        if tflite_model != "none":
            properties["tflite_model"] = tflite_model
        super().__init__(name, {"model": model}, properties)

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Runs ``export_saved_model`` into ``<saved_model>/1``."""
        from llm_tf.export.exporter import export_saved_model

        props = context.properties
        result = export_saved_model(context.inputs["model"].uri, context.output_dirs["saved_model"], VERSION,
                                    props["checkpoint"], props["model_name"], props["warmup_requests"],
                                    tflite_model=props.get("tflite_model", "none"))
        return ExecutionResult({"saved_model": {"version": result.version, "signatures": result.signatures,
                                                "checkpoint": os.path.basename(result.checkpoint), "step": result.step,
                                                "model_name": props["model_name"],
                                                **({"tflite_model": result.tflite_model["variant"]}
                                                   if result.tflite_model else {})}},
                               {"step": result.step, "signatures": len(result.signatures)})
