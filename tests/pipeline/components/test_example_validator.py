"""ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator on real (tiny) files."""

import io
import json
import os

import pytest

from llm_tf.pipeline.components import ExampleGen, ExampleValidator, SchemaGen, StatisticsGen, Transform
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import ComponentFailedError
from llm_tf.pipeline.runner import LocalRunner
from tests.conftest import CORPUS


def _tsv(path, labels):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for i, label in enumerate(labels):
            f.write(f"{CORPUS[i % len(CORPUS)]} {i}\t{label}\n")
    return str(path)


def _pipeline(tmp_path, dev_labels):
    gen = ExampleGen(inputs=[_tsv(tmp_path / "train.tsv", ["0", "1"] * 10)],
                     eval_inputs=[_tsv(tmp_path / "dev.tsv", dev_labels)], text_field="sentence", vocab_size=200)
    stats = StatisticsGen(gen.output("examples"))
    schema = SchemaGen(stats.output("statistics"), gen.output("examples"))
    validator = ExampleValidator(stats.output("statistics"), schema.output("schema"), gen.output("examples"))
    transform = Transform(gen.output("examples"))
    return Pipeline("data", str(tmp_path / "root"), [gen, stats, schema, validator, transform])


def test_clean_data_passes_and_publishes_typed_artifacts(tmp_path):
    result = LocalRunner(out=io.StringIO()).run(_pipeline(tmp_path, ["0", "1"] * 3))
    examples = result["ExampleGen"].outputs["examples"]
    assert examples.properties["counts"] == {"train": 20, "eval": 6}
    assert set(examples.properties["data_files"]) == {str(tmp_path / "train.tsv"), str(tmp_path / "dev.tsv")}
    assert result["ExampleValidator"].metrics == {"anomalies": 0}
    schema = result["SchemaGen"].outputs["schema"]
    assert schema.properties["label_domain"] == ["0", "1"]
    graph = result["Transform"].outputs["transform_graph"]
    assert graph.properties["vocab_file"].startswith(graph.uri) and os.path.isfile(graph.properties["vocab_file"])


def test_an_unseen_label_stops_the_run_at_example_validator_with_a_report(tmp_path):
    runner = LocalRunner(out=io.StringIO())
    with pytest.raises(ComponentFailedError) as info:
        runner.run(_pipeline(tmp_path, ["0", "1", "2", "1"]))
    message = str(info.value)
    assert "component ExampleValidator failed" in message
    assert "[eval] unseen_label: labels outside the schema's domain: '2' (1 rows)" in message
    report = message.rsplit("(report: ", 1)[1].rstrip(")")
    with open(report) as f:
        assert json.load(f)["anomalies"][0]["kind"] == "unseen_label"
    # Nothing after the validator ran, and it published no artifact.
    assert not os.path.exists(tmp_path / "root" / "Transform")
    assert [n for n in os.listdir(tmp_path / "root" / "ExampleValidator" / "anomalies")] == []
