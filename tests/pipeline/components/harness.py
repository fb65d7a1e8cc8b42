"""Runs one component's executor alone, on fake input artifacts, as the runner would.

The runner resolves the inputs, creates an empty directory per output and calls
``component.execute(context)``; :func:`execute` does the same without a pipeline or a metadata
store, so a test controls every input artifact (its directory and properties).
"""

import dataclasses
import os
from typing import Any

from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef


def ref(type_: str, component: str = "Upstream", output: str = "out") -> OutputRef:
    """A channel of type ``type_``, to connect a component's input at definition."""
    return OutputRef(component, output, type_)


def artifact(type_: str, uri, fingerprint: str = "", **properties: Any) -> Artifact:
    """An input artifact at ``uri`` with ``properties``."""
    return Artifact(type_, str(uri), properties, fingerprint=fingerprint)


@dataclasses.dataclass
class Executed:
    """What one execution gave: the result, each output's directory and the logged lines."""

    result: ExecutionResult
    outputs: dict[str, str]
    messages: list[str]

    def props(self, output: str) -> dict[str, Any]:
        """The properties the executor recorded on ``output``."""
        return self.result.output_properties[output]


def execute(component: Component, tmp_path, inputs: dict[str, Artifact] | None = None,
            execution_id: int = 7) -> Executed:
    """Runs ``component.execute`` with ``inputs``, each output in an empty ``tmp_path/out/<name>``
    and ``tmp_path`` as the pipeline root."""
    outputs = {name: os.path.join(str(tmp_path), "out", name) for name in component.OUTPUTS}
    for path in outputs.values():
        os.makedirs(path, exist_ok=True)
    messages: list[str] = []
    context = ExecutionContext(dict(inputs or {}), outputs, dict(component.properties), execution_id, str(tmp_path),
                               log=messages.append)
    return Executed(component.execute(context), outputs, messages)
