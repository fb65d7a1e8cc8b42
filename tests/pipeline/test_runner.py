"""The local runner: artifacts, caching, --nocache, resume after an injected failure, summary."""

import io
import os

import pytest

from llm_tf.pipeline.artifacts import PLOTS
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import ComponentFailedError
from llm_tf.pipeline.metadata import MetadataStore
from llm_tf.pipeline.runner import LocalRunner, plot_paths
from tests.pipeline import fakes
from tests.pipeline.fakes import Source, Step


@pytest.fixture(autouse=True)
def _reset():
    fakes.CALLS.clear()
    Step.FAIL.clear()


def _pipeline(root, value="x", suffix="+"):
    source = Source(value)
    first = Step(source.output("data"), suffix=suffix, name="First")
    second = Step(first.output("data"), name="Second")
    return Pipeline("p", str(root), [source, first, second])


def _run(pipeline, **kwargs):
    out = io.StringIO()
    result = LocalRunner(out=out, **kwargs).run(pipeline)
    return result, out.getvalue()


def test_artifacts_are_immutable_directories_named_by_execution(tmp_path):
    result, text = _run(_pipeline(tmp_path))
    assert result.succeeded
    uri = result["Second"].outputs["data"].uri
    assert uri == os.path.join(str(tmp_path), "Second", "data", str(result["Second"].execution_id))
    with open(os.path.join(uri, "data.txt")) as f:
        assert f.read() == "x++"
    assert "[2/3] First: done" in text and "run p:1 succeeded" in text
    assert "component" in text and "cached" in text          # the summary table
    assert not [n for n in os.listdir(tmp_path / "First" / "data") if n.startswith(".")]
    # Properties naming the staging directory are rewritten to the final URI.
    assert result["Source"].outputs["data"].properties["file"] == os.path.join(
        result["Source"].outputs["data"].uri, "data.txt")


def test_rerun_is_fully_cached_and_a_property_change_reruns_only_downstream(tmp_path):
    _run(_pipeline(tmp_path))
    result, text = _run(_pipeline(tmp_path))
    assert [c.status for c in result.components] == ["cached"] * 3
    assert fakes.CALLS == {"Source": 1, "First": 1, "Second": 1}
    assert "cached (execution" in text
    result, _ = _run(_pipeline(tmp_path, suffix="!"))
    assert [c.status for c in result.components] == ["cached", "done", "done"]
    assert fakes.CALLS == {"Source": 1, "First": 2, "Second": 2}


def test_no_cache_runs_everything(tmp_path):
    _run(_pipeline(tmp_path))
    result, _ = _run(_pipeline(tmp_path), enable_cache=False)
    assert [c.status for c in result.components] == ["done"] * 3


def test_resume_after_injected_failure(tmp_path):
    Step.FAIL["Second"] = 1
    with pytest.raises(ComponentFailedError, match="component Second failed: RuntimeError: injected failure"):
        _run(_pipeline(tmp_path))
    # No partial artifact is visible: only the resumable staging directory, under a dot-name.
    assert [n for n in os.listdir(tmp_path / "Second" / "data")] == [n for n in os.listdir(tmp_path / "Second" / "data")
                                                                      if n.startswith(".staging-")]
    with MetadataStore(str(tmp_path / "metadata.sqlite")) as store:
        states = [e["state"] for e in store.executions_of_context(store.context("pipeline_run", "p:1"))]
    assert states == ["COMPLETE", "COMPLETE", "FAILED"]
    result, text = _run(_pipeline(tmp_path))
    assert [c.status for c in result.components] == ["cached", "cached", "done"]
    assert result["Second"].metrics["resumed"] is True and "resuming in" in text
    assert fakes.CALLS == {"Source": 1, "First": 1, "Second": 2}


def test_failure_stops_the_run_and_marks_the_rest_not_run(tmp_path):
    Step.FAIL["First"] = 1
    result = LocalRunner(out=io.StringIO()).run(_pipeline(tmp_path), raise_on_failure=False)
    assert [c.status for c in result.components] == ["done", "failed", "not run"]
    assert not result.succeeded


class _Narrow(Step):
    """A Step whose cache key covers only ``suffix``, not ``note``."""

    def __init__(self, data, suffix: str = "+", note: str = "", name: str | None = None):
        super().__init__(data, suffix=suffix, name=name)
        self.properties["note"] = note

    def key_properties(self):
        return {"suffix": self.properties["suffix"]}


def test_key_properties_narrow_the_cache_key_but_every_property_is_recorded(tmp_path):
    def pipeline(note, suffix="+"):
        source = Source("x")
        return Pipeline("p", str(tmp_path), [source, _Narrow(source.output("data"), suffix, note, name="Narrow")])

    _run(pipeline("a"))
    again, _ = _run(pipeline("b"))              # only a property outside the key changed
    assert again["Narrow"].status == "cached" and fakes.CALLS["Narrow"] == 1
    changed, _ = _run(pipeline("b", suffix="!"))
    assert changed["Narrow"].status == "done" and fakes.CALLS["Narrow"] == 2
    with MetadataStore(os.path.join(str(tmp_path), "metadata.sqlite")) as store:
        assert store.execution(changed["Narrow"].execution_id)["properties"] == {"suffix": "!", "note": "b"}


class _Charting(Source):
    """Writes ``data.txt`` and a (fake) chart, named in its ``plots`` property."""

    def execute(self, context):
        result = super().execute(context)
        with open(os.path.join(context.output_dirs["data"], "chart.png"), "wb") as f:
            f.write(b"\x89PNG")
        result.output_properties["data"][PLOTS] = ["chart.png"]
        return result


def test_the_summary_lists_the_charts_of_run_and_cached_components(tmp_path):
    pipeline = Pipeline("p", str(tmp_path), [_Charting(name="Drawn"), Source(name="Plain")])
    for status in ("done", "cached"):
        result, text = _run(pipeline)
        chart = os.path.join(result["Drawn"].outputs["data"].uri, "chart.png")
        assert result["Drawn"].status == status and plot_paths(result["Drawn"]) == [chart]
        assert plot_paths(result["Plain"]) == []
        summary = text[text.index("component"):]
        assert f"charts:\n  Drawn  {chart}\nrun p:" in summary
