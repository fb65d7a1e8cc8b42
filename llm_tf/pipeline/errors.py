"""Pipeline errors: one line naming the component (and file or field) and why."""

from llm_tf.errors import LlmTfError


class PipelineError(LlmTfError):
    """A pipeline definition, run or metadata store cannot be used."""


class ComponentFailedError(PipelineError):
    """A component's executor failed; the run stops after recording the failure.

    Attributes:
        component: The component's name.
        cause: The exception the executor raised.
    """

    def __init__(self, component: str, cause: BaseException):
        self.component = component
        self.cause = cause
        super().__init__(f"component {component} failed: {type(cause).__name__}: {cause}")


class AnomaliesFoundError(PipelineError):
    """ExampleValidator found anomalies in the data; the run stops with a report."""
