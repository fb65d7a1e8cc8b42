"""A pipeline: named components and the DAG their input channels form (the DSL, no runner)."""

import os

from llm_tf import io_utils
from llm_tf.pipeline.component import Component
from llm_tf.pipeline.errors import PipelineError

METADATA_FILE = "metadata.sqlite"


class Pipeline:
    """Components in dependency order under a pipeline root.

    Args:
        name: The pipeline's name (its metadata context).
        pipeline_root: Where artifacts (``<component>/<output>/<execution_id>/``) and the
            metadata store live; local or a bucket (``gs://...``).
        components: The components, in any order.
        metadata_path: The SQLite metadata file (default ``<pipeline_root>/metadata.sqlite``;
            one on a bucket is held in memory and written back after every execution).

    Raises:
        PipelineError: Duplicate names, an input from a component not in the pipeline, or a cycle.
    """

    def __init__(self, name: str, pipeline_root: str, components: list[Component], metadata_path: str | None = None):
        self.name = name
        self.pipeline_root = io_utils.abspath(pipeline_root).rstrip("/") or "/"
        self.metadata_path = io_utils.abspath(metadata_path or os.path.join(self.pipeline_root, METADATA_FILE))
        by_name: dict[str, Component] = {}
        for component in components:
            if component.name in by_name:
                raise PipelineError(f"pipeline {name}: two components are named '{component.name}'")
            by_name[component.name] = component
        for component in components:
            for key, ref in component.inputs.items():
                if ref.component not in by_name:
                    raise PipelineError(f"pipeline {name}: component {component.name} input '{key}' comes from "
                                        f"'{ref.component}', which is not in the pipeline")
        self.components = _topological(components, by_name, name)

    def upstream(self, component: Component) -> list[str]:
        """Names of the components ``component`` reads from, in input order."""
        return list(dict.fromkeys(ref.component for ref in component.inputs.values()))

    def describe(self) -> str:
        """The DAG as text: one line per component with its inputs, outputs and properties."""
        lines = [f"pipeline {self.name} (root {self.pipeline_root}, metadata {self.metadata_path})"]
        for i, component in enumerate(self.components, 1):
            lines.append(f"{i:2d}. {component.name} [{type(component).__name__}]")
            for key, ref in component.inputs.items():
                lines.append(f"      in  {key}: {ref.type} <- {ref.component}.{ref.output}")
            for key, kind in component.OUTPUTS.items():
                lines.append(f"      out {key}: {kind}")
            for key, value in sorted(component.properties.items()):
                lines.append(f"      {key} = {value!r}")
        return "\n".join(lines)


def _topological(components: list[Component], by_name: dict[str, Component], name: str) -> list[Component]:
    """Kahn's algorithm, stable: among ready components, the order they were given in."""
    order, done = [], set()
    pending = list(components)
    while pending:
        ready = [c for c in pending if all(ref.component in done for ref in c.inputs.values())]
        if not ready:
            raise PipelineError(f"pipeline {name}: components form a cycle: {', '.join(c.name for c in pending)}")
        first = ready[0]
        order.append(first)
        done.add(first.name)
        pending.remove(first)
    return order
