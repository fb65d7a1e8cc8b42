"""What each task of a compiled pipeline runs under Kubeflow Pipelines (or ``kfp.local``).

:func:`run_task` builds the pipeline again from the compiled definition file and the run's
pipeline parameters, picks its component by name, and runs the component's executor as the
local runner would: our :class:`~llm_tf.pipeline.artifacts.Artifact` inputs are made from the
KFP input artifacts (their local ``.path``, and our type, properties and fingerprint from
their metadata), the output directories are the KFP output artifacts' paths, and the output
properties go back into the KFP artifacts' metadata (all of them as JSON under
:data:`METADATA_KEY`, the scalar ones also as plain keys for KFP's and Vertex AI's UIs). The
fingerprints are computed as the local runner computes them (cache key of the component's
properties, its inputs' fingerprints, its extra facts and the code), so the Pusher's "already
served" check works, and a model pushed by either runner from the same inputs and code has the
same fingerprint.

KFP's caching and metadata replace the local runner's here: no SQLite store is written.
"""

import hashlib
import json
import os
import sys
from typing import Any

from llm_tf import io_utils
from llm_tf.errors import LlmTfError
from llm_tf.pipeline import fingerprint
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import Component, ExecutionContext
from llm_tf.pipeline.definitions import PipelineArgs, build_pipeline
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.kfp_compile import BLESSING_TYPES, IMAGE_PIPELINES_DIR, interface

#: The KFP artifact metadata key holding our artifact as JSON (type, properties, fingerprint).
METADATA_KEY = "llm_tf"


def resolve_pipeline_file(path: str) -> str:
    """The compiled definition file, or the same file name under the image's pipelines directory.

    Raises:
        PipelineError: Neither exists.
    """
    if os.path.isfile(path):
        return path
    in_image = os.path.join(IMAGE_PIPELINES_DIR, os.path.basename(path))
    if os.path.isfile(in_image):
        return in_image
    raise PipelineError(f"pipeline file {path}: not found here, nor {in_image} (build the image with pipelines/, "
                        "or compile with a path the container sees)")


def to_artifact(name: str, kfp_artifact: Any) -> Artifact:
    """Our artifact from a KFP input artifact written by :func:`run_task`.

    Raises:
        PipelineError: The KFP artifact has no llm_tf metadata.
    """
    raw = (kfp_artifact.metadata or {}).get(METADATA_KEY)
    if not raw:
        raise PipelineError(f"input '{name}' ({kfp_artifact.uri}) was not written by an llm_tf component (no "
                            f"'{METADATA_KEY}' metadata)")
    record = json.loads(raw)
    return Artifact(record["type"], kfp_artifact.path, record["properties"], record["fingerprint"], name=name)


def artifact_metadata(artifact_type: str, properties: dict[str, Any], artifact_fingerprint: str,
                      code: dict[str, Any] | None = None, metrics_only: bool = False) -> dict[str, Any]:
    """The KFP metadata of an output: our record as JSON, and the scalar properties as plain keys.

    Args:
        artifact_type: Our artifact type.
        properties: Its properties.
        artifact_fingerprint: Its fingerprint.
        code: The code version that wrote it (:func:`llm_tf.pipeline.fingerprint.code_version`).
        metrics_only: A KFP ``Metrics`` artifact: only numbers as plain keys (and the evaluated
            metric under its own name).

    Returns:
        The metadata dict.
    """
    record = {"type": artifact_type, "properties": properties, "fingerprint": artifact_fingerprint,
              "code": code or {}}
    metadata: dict[str, Any] = {}
    for key, value in properties.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number or (not metrics_only and isinstance(value, (str, bool))):
            metadata[key] = value
    if metrics_only and isinstance(properties.get("metric"), str) and isinstance(properties.get("value"), float):
        metadata[properties["metric"]] = properties["value"]
    metadata[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str)
    return metadata


def execution_id(task_id: str) -> int:
    """An integer execution id from KFP's task id (a number there already, else a hash of it)."""
    if task_id.isdigit():
        return int(task_id)
    return int(hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:12], 16)


def _find(pipeline, spec: dict[str, Any]) -> Component:
    for component in pipeline.components:
        if component.name == spec["component"]:
            if interface(component) != spec["interface"]:
                raise PipelineError(f"component {component.name}: the pipeline these parameters build wires it "
                                    "otherwise than the compiled spec (an option that changes the DAG?); compile "
                                    "again with them")
            return component
    raise PipelineError(f"component {spec['component']}: not in the pipeline these parameters build (an option that "
                        "changes the DAG?); compile again with them")


def execute(spec: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any], parameters: dict[str, Any],
            pipeline_root: str, task_id: str) -> bool | None:
    """Runs one compiled component; see :func:`run_task` (this one raises instead of exiting).

    Returns:
        With a blessing output: whether every blessing output is blessed; else None.

    Raises:
        LlmTfError: The pipeline cannot be built, the component is not the compiled one, or it failed.
    """
    args = PipelineArgs(pipeline_root=pipeline_root, serving_model_base_path=parameters["serving_model_base_path"],
                        data_dir=parameters.get("data_dir") or None,
                        params_override=parameters.get("params_override") or "",
                        options={str(k): str(v) for k, v in (parameters.get("options") or {}).items()})
    pipeline = build_pipeline(resolve_pipeline_file(spec["pipeline_file"]), args)
    component = _find(pipeline, spec)
    ours = {name: to_artifact(name, value) for name, value in inputs.items()}
    # The cache key exactly as LocalRunner._run_component computes it.
    keyed = dict(component.key_properties())
    extra = component.extra_fingerprint()
    if extra:
        keyed["_fingerprint"] = extra
    code = fingerprint.code_version()
    key = fingerprint.execution_key(type(component).__name__, component.name, keyed,
                                    {k: a.fingerprint for k, a in ours.items()}, code["code_fingerprint"])
    output_dirs = {}
    for name, kfp_artifact in outputs.items():
        io_utils.makedirs(kfp_artifact.path)
        output_dirs[name] = kfp_artifact.path
    print(f"{component.name}: running ({type(component).__name__}, pipeline {pipeline.name})", flush=True)
    context = ExecutionContext(ours, output_dirs, dict(component.properties), execution_id(task_id),
                               pipeline.pipeline_root, log=lambda message: print(f"    {component.name}: {message}",
                                                                                 flush=True))
    result = component.execute(context)
    blessed = []
    for name, kind in component.OUTPUTS.items():
        properties = result.output_properties.get(name, {})
        artifact_fingerprint = fingerprint.hash_json({"execution": key, "output": name})
        outputs[name].metadata.update(artifact_metadata(kind, properties, artifact_fingerprint, code,
                                                        metrics_only=type(outputs[name]).__name__ == "Metrics"))
        if kind in BLESSING_TYPES:
            blessed.append(bool(properties.get("blessed")))
    print(f"{component.name}: done " + ", ".join(f"{k}={v}" for k, v in result.metrics.items()), flush=True)
    return all(blessed) if blessed else None


def run_task(task: str, inputs: dict[str, Any], outputs: dict[str, Any], parameters: dict[str, Any],
             pipeline_root: str, task_id: str) -> bool | None:
    """The body of every compiled component's function (see :mod:`llm_tf.pipeline.kfp_compile`).

    Args:
        task: The compiled task constant (JSON: definition file, component name, interface).
        inputs: Input name -> KFP input artifact.
        outputs: Output name -> KFP output artifact (its metadata is filled in).
        parameters: The pipeline parameters (``data_dir``, ``params_override``, ``options``,
            ``serving_model_base_path``).
        pipeline_root: KFP's pipeline root (the component's ``pipeline_root``).
        task_id: KFP's task id (the execution id).

    Returns:
        With a blessing output: whether it is blessed (the task's boolean output); else None.

    Raises:
        SystemExit: An llm_tf error: printed as one line, exit code 1 (the task fails).
    """
    spec = json.loads(task)
    try:
        return execute(spec, inputs, outputs, parameters, pipeline_root, task_id)
    except LlmTfError as e:
        print(f"llm_tf component {spec.get('component')}: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
