"""Pipeline DSL: wiring checks, dependency order, the DAG printout."""

import pytest

from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import PipelineError
from tests.pipeline.fakes import Source, Step


def test_components_are_ordered_by_dependencies(tmp_path):
    source = Source()
    first = Step(source.output("data"), name="First")
    second = Step(first.output("data"), name="Second")
    pipeline = Pipeline("p", str(tmp_path), [second, first, source])
    assert [c.name for c in pipeline.components] == ["Source", "First", "Second"]
    text = pipeline.describe()
    assert "in  data: Examples <- First.data" in text and "suffix = '+'" in text


def test_duplicate_names_and_missing_upstream_are_errors(tmp_path):
    source = Source()
    with pytest.raises(PipelineError, match="two components are named 'Source'"):
        Pipeline("p", str(tmp_path), [source, Source()])
    with pytest.raises(PipelineError, match="not in the pipeline"):
        Pipeline("p", str(tmp_path), [Step(source.output("data"))])


def test_wiring_errors_name_the_component_and_input():
    source = Source()
    with pytest.raises(PipelineError, match="component Source: no output 'nope'"):
        source.output("nope")
    with pytest.raises(PipelineError, match="required input 'data'"):
        Step(None)
    from llm_tf.pipeline.component import OutputRef

    with pytest.raises(PipelineError, match="wants a Examples, got Model"):
        Step(OutputRef("Source", "data", "Model"))
