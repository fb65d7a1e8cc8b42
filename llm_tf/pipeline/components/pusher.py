"""Pusher: adds the model as the next version under the serving base path, only when blessed twice."""

import contextlib
import json
import os
import shutil

from llm_tf import io_utils
from llm_tf.errors import DataError
from llm_tf.export.export_dir import ASSETS_EXTRA_DIR, SAVED_MODEL_FILE, existing_versions, next_version
from llm_tf.io_utils import atomic_directory, atomic_write_json
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.exporter import version_dir
from llm_tf.pipeline.errors import PipelineError

#: Written into every pushed version: where it came from, for ``llm_pipeline lineage``.
PIPELINE_INFO_FILE = os.path.join(ASSETS_EXTRA_DIR, "llm_tf_pipeline.json")


def pushed_info(version_path: str) -> dict | None:
    """The pipeline facts of a pushed version directory, or None when it was not pushed by a pipeline."""
    path = os.path.join(version_path, PIPELINE_INFO_FILE)
    if not io_utils.isfile(path):
        return None
    return json.loads(io_utils.read_text(path))


class Pusher(Component):
    """Copies the SavedModel to ``<serving_model_base_path>/<next version>/`` atomically.

    The version is built under a dot-name that TF Serving ignores and renamed into place; on a
    bucket, which cannot rename directories, it is copied into place file by file with
    ``saved_model.pb`` last (``llm_serve`` lists a version once that file is there; TF Serving
    retries a failed load until it is). It pushes only when the Evaluator's blessing and the
    InfraValidator's blessing are both positive, and not when the latest served version is
    already this very model; otherwise it records why not (``push.json``, artifact properties
    ``pushed`` and ``reason``).

    Args:
        saved_model: Exporter's ``saved_model``.
        blessing: Evaluator's ``blessing``.
        infra_blessing: InfraValidator's ``infra_blessing``.
        serving_model_base_path: The TF Serving model base path.
        name: Component name.
    """

    INPUTS = {"saved_model": artifacts.SAVED_MODEL, "blessing": artifacts.MODEL_BLESSING,
              "infra_blessing": artifacts.INFRA_BLESSING}
    OUTPUTS = {"pushed_model": artifacts.PUSHED_MODEL}

    def __init__(self, saved_model: OutputRef, blessing: OutputRef, infra_blessing: OutputRef,
                 serving_model_base_path: str, name: str | None = None):
        super().__init__(name, {"saved_model": saved_model, "blessing": blessing, "infra_blessing": infra_blessing},
                         {"serving_model_base_path": io_utils.abspath(serving_model_base_path)})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Pushes, or records why not."""
        saved_model = context.inputs["saved_model"]
        base = context.properties["serving_model_base_path"]
        refusals = []
        for key in ("blessing", "infra_blessing"):
            props = context.inputs[key].properties
            if not props.get("blessed"):
                refusals.append(f"{key}: {props.get('reason', 'not blessed')}")
        versions = existing_versions(base)
        if not refusals and versions:
            info = pushed_info(os.path.join(base, str(versions[-1])))
            if info and info.get("model_fingerprint") == saved_model.fingerprint:
                refusals.append(f"already served as version {versions[-1]}")
        if refusals:
            reason = "; ".join(refusals)
            record = {"pushed": False, "reason": reason, "serving_model_base_path": base,
                      "served_versions": versions}
            context.log(f"not pushed: {reason}")
            atomic_write_json(os.path.join(context.output_dirs["pushed_model"], "push.json"), record)
            return ExecutionResult({"pushed_model": record}, {"pushed": False})
        source = version_dir(saved_model)
        if not io_utils.isdir(source):
            raise PipelineError(f"component {self.name}: input 'saved_model' ({saved_model.uri}) has no version "
                                f"directory {source}")
        version = next_version(base)
        destination = os.path.join(base, str(version))
        info = {"pipeline_root": context.pipeline_root, "pusher_execution": context.execution_id,
                "model_fingerprint": saved_model.fingerprint, "saved_model": saved_model.uri}
        if context.metadata_path:
            info["metadata_path"] = context.metadata_path
        if io_utils.is_remote(destination):
            _push_remote(source, destination, info)
        else:
            with atomic_directory(destination) as tmp:
                if io_utils.is_remote(source):
                    io_utils.copy_tree(source, tmp)
                else:
                    shutil.copytree(source, tmp, dirs_exist_ok=True)
                os.makedirs(os.path.join(tmp, os.path.dirname(PIPELINE_INFO_FILE)), exist_ok=True)
                atomic_write_json(os.path.join(tmp, PIPELINE_INFO_FILE), info)
        record = {"pushed": True, "version": version, "path": destination, "serving_model_base_path": base,
                  "reason": "blessed by Evaluator and InfraValidator"}
        atomic_write_json(os.path.join(context.output_dirs["pushed_model"], "push.json"), record)
        context.log(f"pushed version {version} to {destination}")
        return ExecutionResult({"pushed_model": record}, {"pushed": True, "version": version})


def _push_remote(source: str, destination: str, info: dict) -> None:
    """Copies version ``source`` to ``destination`` on a bucket, ``saved_model.pb`` last.

    Raises:
        PipelineError: ``destination`` exists already.
        DataError: The bucket failed (what was copied is deleted again, best effort).
    """
    if io_utils.exists(destination):
        raise PipelineError(f"{destination}: exists already (another push chose the same version)")
    try:
        with io_utils.storage_errors(destination):
            atomic_write_json(os.path.join(destination, PIPELINE_INFO_FILE), info)
            io_utils.copy_tree(source, destination, last=(SAVED_MODEL_FILE,))
    except BaseException:
        with contextlib.suppress(DataError):
            io_utils.remove_tree(destination)
        raise
