"""Tiny components (no TensorFlow) for testing the framework: they write files and count runs."""

import os

from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult

CALLS: dict[str, int] = {}


class Source(Component):
    """Writes ``data.txt`` with its ``value`` property."""

    OUTPUTS = {"data": "Examples"}

    def __init__(self, value: str = "x", name: str | None = None):
        super().__init__(name, {}, {"value": value})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        with open(os.path.join(context.output_dirs["data"], "data.txt"), "w") as f:
            f.write(context.properties["value"])
        return ExecutionResult({"data": {"value": context.properties["value"],
                                         "file": os.path.join(context.output_dirs["data"], "data.txt")}},
                               {"chars": len(context.properties["value"])})


class Step(Component):
    """Appends its ``suffix`` to the input's text; fails when ``fail_times`` > calls so far.

    Resumable: it leaves ``progress.txt`` in its staging directory before failing, and
    reports whether it found one (``resumed``).
    """

    INPUTS = {"data": "Examples"}
    OUTPUTS = {"data": "Examples"}
    RESUMABLE = True
    FAIL: dict[str, int] = {}

    def __init__(self, data, suffix: str = "+", name: str | None = None):
        super().__init__(name, {"data": data}, {"suffix": suffix})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        out = context.output_dirs["data"]
        progress = os.path.join(out, "progress.txt")
        resumed = os.path.exists(progress)
        with open(progress, "w") as f:
            f.write("half way")
        if Step.FAIL.get(self.name, 0) > 0:
            Step.FAIL[self.name] -= 1
            raise RuntimeError(f"injected failure in {self.name}")
        with open(os.path.join(context.inputs["data"].uri, "data.txt")) as f:
            text = f.read()
        with open(os.path.join(out, "data.txt"), "w") as f:
            f.write(text + context.properties["suffix"])
        return ExecutionResult({"data": {"resumed": resumed}}, {"resumed": resumed})


class FakeExport(Component):
    """A "SavedModel" artifact: ``1/saved_model.pb`` holding the input's text."""

    INPUTS = {"data": "Examples"}
    OUTPUTS = {"saved_model": "SavedModel"}

    def __init__(self, data, name: str | None = None):
        super().__init__(name, {"data": data})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        os.makedirs(os.path.join(context.output_dirs["saved_model"], "1"))
        with open(os.path.join(context.inputs["data"].uri, "data.txt")) as f:
            text = f.read()
        with open(os.path.join(context.output_dirs["saved_model"], "1", "saved_model.pb"), "w") as f:
            f.write(text)
        return ExecutionResult({"saved_model": {"version": 1}})


class FakeBlessing(Component):
    """A ModelBlessing or InfraBlessing with a fixed verdict."""

    INPUTS = {"saved_model": "SavedModel"}

    def __init__(self, saved_model, kind: str, blessed: bool, name: str | None = None):
        self.OUTPUTS = {"blessing": kind}
        super().__init__(name, {"saved_model": saved_model}, {"blessed": blessed})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        blessed = context.properties["blessed"]
        return ExecutionResult({"blessing": {"blessed": blessed, "reason": "fixed" if blessed else "fixed refusal"}})
