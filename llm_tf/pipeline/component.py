"""Components, TFX style: a spec (typed inputs, outputs, execution properties) and an executor.

A component subclass declares ``INPUTS`` and ``OUTPUTS`` (name -> artifact type) and
implements :meth:`Component.execute`, which calls the same library functions as the
binaries and writes each output into the directory the runner hands it. Components are wired
by passing another component's :meth:`Component.output` as an input.

Example::

    gen = ExampleGen(inputs=["train.tsv"], eval_inputs=["dev.tsv"], text_field="sentence")
    trainer = Trainer(examples=gen.output("examples"), experiment="sentence_classification")
"""

import dataclasses
import json
import os
from typing import Any, ClassVar

from llm_tf import io_utils
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.errors import PipelineError


@dataclasses.dataclass(frozen=True)
class OutputRef:
    """A channel: output ``output`` of the component named ``component``, of type ``type``."""

    component: str
    output: str
    type: str


@dataclasses.dataclass
class ExecutionContext:
    """What an executor gets.

    Attributes:
        inputs: Input name -> resolved artifact (optional inputs that are absent are missing).
        output_dirs: Output name -> the (staging) directory to write it into; it exists and
            becomes the artifact's immutable URI when the execution succeeds.
        properties: The component's execution properties.
        execution_id: The execution's id in the metadata store.
        pipeline_root: The pipeline root directory (local or a bucket, as every URI here).
        log: Prints a progress message under the component's line.
        metadata_path: The metadata store (empty when run outside a pipeline).
    """

    inputs: dict[str, Artifact]
    output_dirs: dict[str, str]
    properties: dict[str, Any]
    execution_id: int
    pipeline_root: str
    log: Any = print
    metadata_path: str = ""

    def _input(self, name: str) -> Artifact:
        if name not in self.inputs:
            raise PipelineError(f"input '{name}' is missing")
        return self.inputs[name]

    def input_path(self, name: str, *parts: str) -> str:
        """The file or directory ``parts`` inside input ``name``'s URI.

        Raises:
            PipelineError: The input is missing, or that path is not in it (the message names both).
        """
        artifact = self._input(name)
        path = os.path.join(artifact.uri, *parts)
        if not io_utils.exists(path):
            raise PipelineError(f"input '{name}' ({artifact.type} at {artifact.uri}) has no {os.path.join(*parts)}")
        return path

    def input_property(self, name: str, key: str) -> Any:
        """Property ``key`` of input ``name``.

        Raises:
            PipelineError: The input is missing, or it has no such property (the message names both).
        """
        artifact = self._input(name)
        if key not in artifact.properties:
            raise PipelineError(f"input '{name}' ({artifact.type} at {artifact.uri}) has no property '{key}'")
        return artifact.properties[key]


@dataclasses.dataclass
class ExecutionResult:
    """What an executor returns.

    Attributes:
        output_properties: Output name -> properties recorded on its artifact.
        metrics: Key metrics shown in the run's summary table and stored on the execution.
    """

    output_properties: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


class Component:
    """Base class of pipeline components.

    Args:
        name: The component's id in the pipeline (default: the class name).
        inputs: Input name -> :class:`OutputRef` (or None for an absent optional input).
        properties: Execution properties; JSON-able (they are part of the cache key).

    Raises:
        PipelineError: An unknown or missing input, a type mismatch, or properties that are
            not JSON-able.
    """

    #: Input name -> artifact type.
    INPUTS: ClassVar[dict[str, str]] = {}
    #: Inputs that may be None.
    OPTIONAL_INPUTS: ClassVar[frozenset[str]] = frozenset()
    #: Output name -> artifact type.
    OUTPUTS: ClassVar[dict[str, str]] = {}
    #: Keep the staging directories of a failed or killed execution, so that the next run
    #: with the same cache key resumes in them (Trainer: from its latest checkpoint).
    RESUMABLE: ClassVar[bool] = False

    def __init__(self, name: str | None = None, inputs: dict[str, OutputRef | None] | None = None,
                 properties: dict[str, Any] | None = None):
        self.name = name or type(self).__name__
        self.inputs = {k: v for k, v in (inputs or {}).items() if v is not None}
        self.properties = dict(properties or {})
        for key, ref in self.inputs.items():
            if key not in self.INPUTS:
                raise PipelineError(f"component {self.name}: unknown input '{key}' (inputs: {', '.join(self.INPUTS)})")
            if not isinstance(ref, OutputRef):
                raise PipelineError(f"component {self.name}: input '{key}' must be another component's .output(...)")
            if ref.type != self.INPUTS[key]:
                raise PipelineError(f"component {self.name}: input '{key}' wants a {self.INPUTS[key]}, got "
                                    f"{ref.type} from {ref.component}.{ref.output}")
        for key in self.INPUTS:
            if key not in self.inputs and key not in self.OPTIONAL_INPUTS:
                raise PipelineError(f"component {self.name}: required input '{key}' ({self.INPUTS[key]}) is not "
                                    "connected")
        try:
            json.dumps(self.properties, sort_keys=True)
        except TypeError as e:
            raise PipelineError(f"component {self.name}: execution properties must be JSON-able: {e}") from None

    def output(self, name: str) -> OutputRef:
        """The channel of output ``name``, to connect to another component's input.

        Raises:
            PipelineError: No such output.
        """
        if name not in self.OUTPUTS:
            raise PipelineError(f"component {self.name}: no output '{name}' (outputs: {', '.join(self.OUTPUTS)})")
        return OutputRef(self.name, name, self.OUTPUTS[name])

    def extra_fingerprint(self) -> dict[str, Any]:
        """Facts outside the inputs and properties that the result depends on (cache key).

        ExampleGen returns the SHA-256 of its input files, so changed data re-runs it.
        """
        return {}

    def key_properties(self) -> dict[str, Any]:
        """The execution properties the cache key covers (default: all of them).

        All properties are recorded on the execution either way. A component whose result
        depends on only part of what its properties configure narrows this (TeacherLogits
        covers only the parts of the student's training config the logits depend on), so that
        changing the rest re-runs the components that use it and not this one.
        """
        return self.properties

    def execute(self, context: ExecutionContext) -> ExecutionResult:  # pragma: no cover - abstract
        """Runs the component; writes each output into ``context.output_dirs[name]``.

        Args:
            context: The resolved inputs, output directories and properties.

        Returns:
            An :class:`ExecutionResult`.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
