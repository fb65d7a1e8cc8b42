"""The local runner: runs a pipeline's DAG in dependency order in this process.

For every component it resolves the inputs, computes the cache key (inputs' fingerprints,
the properties the component's key covers, ``Component.key_properties``, and the code
fingerprint), and either reuses a completed execution with that key
(cached) or runs the executor into staging directories that are renamed to
``<pipeline_root>/<component>/<output>/<execution_id>/`` only on success, so no partial
artifact is ever visible. A failed or killed run is resumed by running it again: completed
components come from the cache, and a resumable component (Trainer) continues in its staging
directory, which is keyed by the cache key.

On a bucket (``gs://...``), which cannot rename a directory, a staging directory is copied to
its final name file by file (``saved_model.pb`` last) and then deleted; the artifact is
recorded in the metadata store, where the cache and the next components find it, only after
the copy is complete.
"""

import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any, TextIO

from llm_tf import io_utils
from llm_tf.io_utils import DIR_MODE
from llm_tf.pipeline import fingerprint, metadata
from llm_tf.pipeline.artifacts import PLOTS, Artifact
from llm_tf.pipeline.component import Component, ExecutionContext
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import ComponentFailedError, PipelineError


@dataclasses.dataclass
class ComponentRun:
    """One row of the run summary.

    Attributes:
        component: The component's name.
        status: ``done``, ``cached``, ``failed`` or ``not run``.
        seconds: Wall time (0 when cached or not run).
        execution_id: Its execution id (0 when not run).
        metrics: Key metrics.
        outputs: Output name -> artifact.
        error: The failure, when failed.
    """

    component: str
    status: str
    seconds: float = 0.0
    execution_id: int = 0
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Artifact] = dataclasses.field(default_factory=dict)
    error: str = ""

    @property
    def cached(self) -> bool:
        """Whether the result came from the cache."""
        return self.status == "cached"


@dataclasses.dataclass
class RunResult:
    """What :meth:`LocalRunner.run` did.

    Attributes:
        run_id: The run's context name (``<pipeline>:<n>``).
        components: One :class:`ComponentRun` per component, in DAG order.
        seconds: Wall time of the run.
    """

    run_id: str
    components: list[ComponentRun]
    seconds: float

    @property
    def succeeded(self) -> bool:
        """True when every component completed (ran or cached)."""
        return all(c.status in ("done", "cached") for c in self.components)

    def __getitem__(self, name: str) -> ComponentRun:
        for run in self.components:
            if run.component == name:
                return run
        raise KeyError(name)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_metrics(metrics: dict[str, Any], limit: int = 4) -> str:
    """Up to ``limit`` metrics as ``k=v`` text."""
    return ", ".join(f"{k}={_short(v)}" for k, v in list(metrics.items())[:limit])


def format_summary(result: RunResult) -> str:
    """The final summary: a table (component, status, duration, cached?, key metrics), then the
    charts the components drew (their artifacts' ``plots``), one path a line."""
    rows = [("component", "status", "duration", "cached", "key metrics")]
    for run in result.components:
        rows.append((run.component, run.status, f"{run.seconds:.1f}s" if run.status == "done" else "-",
                     "yes" if run.cached else "no", run.error[:100] if run.error else format_metrics(run.metrics)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    charts = [(run.component, path) for run in result.components for path in plot_paths(run)]
    if charts:
        width = max(len(name) for name, _ in charts)
        lines += ["", "charts:"] + [f"  {name.ljust(width)}  {path}" for name, path in charts]
    state = "succeeded" if result.succeeded else "FAILED"
    lines.append(f"run {result.run_id} {state} in {result.seconds:.1f}s")
    return "\n".join(lines)


def plot_paths(run: ComponentRun) -> list[str]:
    """The charts a component's outputs hold (their ``plots`` property), as paths."""
    return [os.path.join(artifact.uri, name) for artifact in run.outputs.values()
            for name in artifact.properties.get(PLOTS, [])]


def _relocate(properties: dict[str, Any], staging: str, final: str) -> dict[str, Any]:
    """Rewrites paths under the staging directory in ``properties`` to the final URI."""
    return json.loads(json.dumps(properties, default=str).replace(json.dumps(staging)[1:-1], json.dumps(final)[1:-1]))


def _written_by_another_store(final: str) -> str:
    return (f"{final}: exists already: another metadata store has written this pipeline root (keep its "
            "metadata.sqlite, or give each metadata store its own --pipeline_root)")


def _publish(staging: str, final: str) -> None:
    """Renames a staging directory to its final name; on a bucket, copies it there and deletes it.

    Raises:
        PipelineError: On a bucket, ``final`` exists already (a run with another metadata store
            wrote this pipeline root).
    """
    if not io_utils.is_remote(final):
        os.replace(staging, final)
        return
    from llm_tf.export.export_dir import SAVED_MODEL_FILE  # an artifact that holds a SavedModel: that file last

    if io_utils.exists(final):
        raise PipelineError(_written_by_another_store(final))
    with io_utils.storage_errors(final):
        io_utils.makedirs(final)  # an output may be empty; its directory must still exist
        io_utils.copy_tree(staging, final, last=(SAVED_MODEL_FILE,))
    io_utils.remove_tree(staging)


class LocalRunner:
    """Runs pipelines locally, recording everything in the pipeline's metadata store.

    Args:
        enable_cache: Reuse executions whose cache key matches (``llm_pipeline --nocache`` turns it off).
        out: Where progress lines go (default stdout).
    """

    def __init__(self, enable_cache: bool = True, out: TextIO | None = None):
        self.enable_cache = enable_cache
        self.out = out or sys.stdout

    def _print(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def run(self, pipeline: Pipeline, raise_on_failure: bool = True) -> RunResult:
        """Runs ``pipeline``; prints a progress line per component and the summary table.

        Args:
            pipeline: The pipeline.
            raise_on_failure: Raise when a component fails (after printing the summary).

        Returns:
            A :class:`RunResult`.

        Raises:
            ComponentFailedError: A component failed (and ``raise_on_failure``); later
                components are not run.
        """
        started = time.time()
        io_utils.makedirs(pipeline.pipeline_root)
        code = fingerprint.code_version()
        with metadata.MetadataStore(pipeline.metadata_path) as store:
            pipeline_context = store.context("pipeline", pipeline.name, {"pipeline_root": pipeline.pipeline_root})
            run_number = len(store.run_contexts(pipeline.name)) + 1
            run_id = f"{pipeline.name}:{run_number}"
            run_context = store.context("pipeline_run", run_id, {"started": started, "code_version": code,
                                                                 "cache": self.enable_cache})
            runs: list[ComponentRun] = []
            produced: dict[str, dict[str, Artifact]] = {}
            failure: ComponentFailedError | None = None
            total = len(pipeline.components)
            for index, component in enumerate(pipeline.components, 1):
                prefix = f"[{index}/{total}] {component.name}"
                if failure is not None:
                    runs.append(ComponentRun(component.name, "not run"))
                    continue
                try:
                    run = self._run_component(store, pipeline, component, produced, code,
                                              [pipeline_context, run_context], prefix)
                except ComponentFailedError as e:
                    failure = e
                    run = ComponentRun(component.name, "failed", error=str(e.cause),
                                       execution_id=getattr(e, "execution_id", 0))
                    self._print(f"{prefix}: FAILED: {e.cause}")
                runs.append(run)
                produced[component.name] = run.outputs
            result = RunResult(run_id, runs, time.time() - started)
        self._print(format_summary(result))
        if failure is not None and raise_on_failure:
            raise failure
        return result

    def _run_component(self, store: metadata.MetadataStore, pipeline: Pipeline, component: Component,
                       produced: dict[str, dict[str, Artifact]], code: dict, contexts: list[int],
                       prefix: str) -> ComponentRun:
        inputs: dict[str, Artifact] = {}
        for key, ref in component.inputs.items():
            artifact = produced.get(ref.component, {}).get(ref.output)
            if artifact is None:
                raise PipelineError(f"component {component.name}: input '{key}' "
                                    f"({ref.component}.{ref.output}) was not produced")
            inputs[key] = artifact
        properties = dict(component.properties)
        keyed = dict(component.key_properties())
        extra = component.extra_fingerprint()
        if extra:
            properties["_fingerprint"] = keyed["_fingerprint"] = extra
        key = fingerprint.execution_key(type(component).__name__, component.name, keyed,
                                        {k: a.fingerprint for k, a in inputs.items()}, code["code_fingerprint"])
        if self.enable_cache:
            cached = store.find_cached(component.name, key)
            if cached is not None:
                original = store.execution(cached)
                execution_id = store.start_execution(component.name, type(component).__name__, key, properties, code,
                                                     contexts, state=metadata.CACHED, cached_from=cached)
                outputs = store.outputs(cached)
                for name, artifact in inputs.items():
                    store.add_event(execution_id, artifact.id, "INPUT", name)
                for name, artifact in outputs.items():
                    store.add_event(execution_id, artifact.id, "OUTPUT", name)
                store.finish_execution(execution_id, metadata.CACHED, original["metrics"])
                self._print(f"{prefix}: cached (execution {cached}) {format_metrics(original['metrics'])}")
                return ComponentRun(component.name, "cached", 0.0, execution_id, original["metrics"], outputs)

        execution_id = store.start_execution(component.name, type(component).__name__, key, properties, code, contexts)
        for name, artifact in inputs.items():
            store.add_event(execution_id, artifact.id, "INPUT", name)
        staging = {}
        for name in component.OUTPUTS:
            parent = os.path.join(pipeline.pipeline_root, component.name, name)
            io_utils.makedirs(parent)
            tag = key[:16] if component.RESUMABLE else str(execution_id)
            staging[name] = os.path.join(parent, f".staging-{tag}")
            if io_utils.isdir(staging[name]) and component.RESUMABLE:
                self._print(f"{prefix}: resuming in {staging[name]}")
            elif io_utils.is_remote(parent):
                final = os.path.join(parent, str(execution_id))
                if io_utils.exists(final):
                    store.finish_execution(execution_id, metadata.FAILED, error=f"{final} exists already")
                    raise PipelineError(_written_by_another_store(final))
                io_utils.remove_tree(staging[name])
                io_utils.makedirs(staging[name])
            else:
                shutil.rmtree(staging[name], ignore_errors=True)
                os.makedirs(staging[name], mode=DIR_MODE)
        self._print(f"{prefix}: running (execution {execution_id})")
        started = time.time()
        context = ExecutionContext(inputs, staging, dict(component.properties), execution_id, pipeline.pipeline_root,
                                   log=lambda message: self._print(f"    {component.name}: {message}"),
                                   metadata_path=pipeline.metadata_path)
        try:
            result = component.execute(context)
        except BaseException as e:
            store.finish_execution(execution_id, metadata.FAILED, error=f"{type(e).__name__}: {e}")
            if not component.RESUMABLE:
                for path in staging.values():
                    io_utils.remove_tree(path)
            if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: recorded, then let through
                raise
            error = ComponentFailedError(component.name, e)
            error.execution_id = execution_id
            raise error from e
        outputs = {}
        for name, kind in component.OUTPUTS.items():
            final = os.path.join(os.path.dirname(staging[name]), str(execution_id))
            _publish(staging[name], final)
            properties = _relocate(result.output_properties.get(name, {}), staging[name], final)
            artifact = Artifact(kind, final, properties,
                                fingerprint.hash_json({"execution": key, "output": name}), name=name)
            store.add_artifact(artifact)
            store.add_event(execution_id, artifact.id, "OUTPUT", name)
            outputs[name] = artifact
        seconds = time.time() - started
        store.finish_execution(execution_id, metadata.COMPLETE, result.metrics)
        self._print(f"{prefix}: done in {seconds:.1f}s {format_metrics(result.metrics)}")
        return ComponentRun(component.name, "done", seconds, execution_id, result.metrics, outputs)
