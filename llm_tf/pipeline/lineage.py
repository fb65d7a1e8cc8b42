"""Lineage: everything that produced a pushed model version, from the metadata store."""

import json
import os
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.metadata import MetadataStore


def find_pushed(store: MetadataStore, version: int, serving_model_base_path: str | None = None) -> artifacts.Artifact:
    """The PushedModel artifact that pushed ``version`` (under ``serving_model_base_path`` when given).

    Raises:
        PipelineError: No push of that version is recorded.
    """
    base = io_utils.abspath(serving_model_base_path) if serving_model_base_path else None
    for artifact in reversed(store.artifacts_of_type(artifacts.PUSHED_MODEL)):
        props = artifact.properties
        if props.get("pushed") and props.get("version") == version and (
                base is None or props.get("serving_model_base_path") == base):
            return artifact
    where = f" under {base}" if base else ""
    raise PipelineError(f"{store.path}: no pipeline run pushed model version {version}{where}")


def trace(store: MetadataStore, artifact: artifacts.Artifact) -> list[dict[str, Any]]:
    """The executions upstream of ``artifact``, each once, producers before consumers.

    Returns:
        Dicts with ``execution`` (the execution record), ``inputs`` and ``outputs``
        (name -> :class:`Artifact`).
    """
    seen: dict[int, dict[str, Any]] = {}
    order: list[int] = []

    def visit(art: artifacts.Artifact) -> None:
        execution_id = store.producer(art.id)
        if execution_id is None or execution_id in seen:
            return
        entry = {"execution": store.execution(execution_id), "inputs": store.inputs(execution_id),
                 "outputs": store.outputs(execution_id)}
        seen[execution_id] = entry
        for parent in entry["inputs"].values():
            visit(parent)
        order.append(execution_id)

    visit(artifact)
    return [seen[i] for i in order]


def _props(properties: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return json.dumps({k: v for k, v in properties.items() if k not in skip}, sort_keys=True, default=str)


def format_lineage(store: MetadataStore, version: int, serving_model_base_path: str | None = None) -> str:
    """The lineage of a pushed version as text: data files, vocabulary, config, code, each step.

    Raises:
        PipelineError: The version was not pushed by a pipeline recorded in ``store``.
    """
    pushed = find_pushed(store, version, serving_model_base_path)
    chain = trace(store, pushed)
    lines = [f"model version {version}: {pushed.properties.get('path')}"]
    for entry in chain:
        execution = entry["execution"]
        props = dict(execution["properties"])
        props.pop("_fingerprint", None)
        lines.append(f"<- {execution['component']} [{execution['component_type']}] execution {execution['id']} "
                     f"({execution['state']})")
        code = execution["code_version"]
        lines.append(f"     code: llm-tf {code.get('package_version')} git {code.get('git_commit', '?')[:12]}"
                     f"{' (dirty)' if code.get('git_dirty') else ''} "
                     f"fingerprint {code.get('code_fingerprint', '')[:12]}")
        if props:
            lines.append(f"     properties: {_props(props)}")
        for name, art in entry["outputs"].items():
            lines.append(f"     out {name}: {art.type} {art.uri}")
            p = art.properties
            if art.type in (artifacts.EXAMPLES, artifacts.TRANSFER_SET):  # both are read from data files
                for path, digest in sorted(p.get("data_files", {}).items()):
                    lines.append(f"       data file {path} sha256 {digest[:16]}")
            if art.type == artifacts.EXAMPLES:
                lines.append(f"       counts {p.get('counts')} labels {p.get('labels')}")
            elif art.type == artifacts.TRANSFER_SET:
                lines.append(f"       transfer set {p.get('path')} rows {p.get('rows')} {p.get('counts')}")
            elif art.type == artifacts.TRANSFORM_GRAPH:
                lines.append(f"       vocabulary {p.get('vocab_file')} ({p.get('kind')}, {p.get('vocab_size')} tokens, "
                             f"sha256 {str(p.get('vocab_sha256'))[:16]})")
            elif art.type == artifacts.MODEL:
                lines.append(f"       config {os.path.join(art.uri, 'params.yaml')} (experiment {p.get('experiment')}, "
                             f"step {p.get('step')})")
            elif p:
                lines.append(f"       {_props(p, ('by_label', 'by_length'))}")
    return "\n".join(lines)
