"""Runs a compiled pipeline spec on this machine with ``kfp.local`` (``llm_pipeline run_kfp_local``).

The spec file ``llm_pipeline compile`` wrote is loaded as it is (``kfp.components.load_component_from_text``)
and called under ``kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False))``: every
task runs as a subprocess of this Python environment (no Kubernetes, no container, nothing
installed), its conditions are evaluated as on a cluster, and its artifacts go under
``<pipeline_root>/<pipeline>-<timestamp>/<task>/<output>``. kfp.local's own cache (off by
default) is used with ``enable_cache``; no SQLite metadata store is written.
"""

import os
import re
import warnings
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.kfp_compile import import_kfp

KFP_MISSING = "llm_pipeline run_kfp_local needs the kfp package: pip install 'llm-tf[kfp]'"
#: The Pusher's record inside its artifact.
PUSH_FILE = "push.json"


def _load_spec(package: str) -> tuple[str, dict[str, Any]]:
    """The spec's text and its parsed form.

    Raises:
        PipelineError: No such file, or not a pipeline spec.
    """
    import yaml

    if not io_utils.isfile(package):
        raise PipelineError(f"--package: {package}: no such file (write it with llm_pipeline compile)")
    text = io_utils.read_text(package)
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PipelineError(f"--package: {package}: not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise PipelineError(f"--package: {package}: not a KFP pipeline spec (no pipelineInfo and root)")
    return text, spec


def _pushes(run_dir: str) -> list[dict[str, Any]]:
    """The Pushers' records under a kfp.local run directory."""
    import json

    found = []
    for parent, _, files in sorted(os.walk(run_dir)):
        if PUSH_FILE in files:
            with open(os.path.join(parent, PUSH_FILE), encoding="utf-8") as f:
                found.append(json.load(f))
    return found


def run_compiled(package: str, pipeline_root: str | None = None, arguments: dict[str, Any] | None = None,
                 enable_cache: bool = False) -> dict[str, Any]:
    """Runs compiled spec ``package`` with kfp.local's SubprocessRunner in this Python environment.

    Args:
        package: The spec file (local or ``gs://``), as ``llm_pipeline compile`` wrote it.
        pipeline_root: kfp.local's (local) pipeline root (default: the spec's default pipeline
            root); tasks get it as their pipeline root.
        arguments: Pipeline parameters to override (``data_dir``, ``params_override``,
            ``options``, ``serving_model_base_path``).
        enable_cache: kfp.local's task cache (under ``<pipeline_root>/.kfp_cache``).

    Returns:
        ``{"pipeline", "pipeline_root", "run_dir", "pushes"}``: the run's directory and each
        Pusher's record (``pushed``, ``version``, ``path``, ``reason``); a Pusher its conditions
        skipped has none.

    Raises:
        PipelineError: kfp is missing; a bad spec, unknown parameter or remote root; a task failed.
    """
    import_kfp(KFP_MISSING)
    from kfp import components, local

    text, spec = _load_spec(package)
    arguments = dict(arguments or {})
    known = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    for name in arguments:
        if name not in known:
            raise PipelineError(f"{name}: not a parameter of {package} (parameters: {', '.join(sorted(known))})")
    root = pipeline_root or spec.get("defaultPipelineRoot") or ""
    if not root:
        raise PipelineError(f"--pipeline_root: {package} has no default pipeline root; pass one")
    if io_utils.is_remote(root):
        raise PipelineError(f"--pipeline_root: {root}: kfp.local writes a local directory only (a bucket root is "
                            "for a cluster)")
    root = os.path.abspath(root)
    os.makedirs(root, exist_ok=True)
    before = set(os.listdir(root))
    pipeline = components.load_component_from_text(text)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True,
               enable_caching=enable_cache)
    with warnings.catch_warnings():
        # kfp.local warns for an image whose name lacks "python": the SubprocessRunner runs here, not in the image.
        warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
        # ... and for settings it ignores (display names, resources): they are for a cluster.
        warnings.filterwarnings("ignore", message=r"Task '.*': settings .* have no effect", category=UserWarning)
        try:
            pipeline(**arguments)
        except RuntimeError as e:  # kfp.local's "Pipeline ... finished with status FAILURE. Inner task failed: ..."
            message = re.sub(r"\x1b\[[0-9;]*m", "", str(e).splitlines()[0])  # its terminal colours
            raise PipelineError(f"{package}: {message}") from None
    runs = sorted(set(os.listdir(root)) - before - {".kfp_cache"})
    run_dir = os.path.join(root, runs[-1]) if runs else ""
    return {"pipeline": spec["pipelineInfo"]["name"], "pipeline_root": root, "run_dir": run_dir,
            "pushes": _pushes(run_dir) if run_dir else []}
