"""ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator on real (tiny) files; then the
ExampleValidator's executor alone on the prepared sample's statistics (edited to hold anomalies)."""

import io
import json
import os

import pytest

from llm_tf.data import schema as schema_lib
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import ExampleGen, ExampleValidator, SchemaGen, StatisticsGen, Transform
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import AnomaliesFoundError, ComponentFailedError, PipelineError
from llm_tf.pipeline.runner import LocalRunner
from tests.conftest import CORPUS
from tests.pipeline.components.harness import artifact, execute, ref


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


# ----------------------------------------------------------------------------- the executor alone
STATISTICS = ref(artifacts.STATISTICS, "StatisticsGen", "statistics")
SCHEMA = ref(artifacts.SCHEMA, "SchemaGen", "schema")
EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")


def _inputs(tmp_path, prepared_dir: str, change=None) -> dict:
    """Statistics of the prepared sample (``change`` edits them) and a schema inferred from its train split."""
    with open(os.path.join(prepared_dir, "statistics.json"), encoding="utf-8") as f:
        stats = json.load(f)
    schema = schema_lib.infer_schema(stats["train"], ["text", "label"], ["0", "1"])
    if change is not None:
        change(stats)
    for name, content in (("statistics", stats), ("schema", schema)):
        os.makedirs(tmp_path / name, exist_ok=True)
        with open(tmp_path / name / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(content, f)
    return {"statistics": artifact(artifacts.STATISTICS, tmp_path / "statistics"),
            "schema": artifact(artifacts.SCHEMA, tmp_path / "schema"),
            "examples": artifact(artifacts.EXAMPLES, prepared_dir, features=["text", "label"])}


def _unseen_label_and_empty_texts(stats: dict) -> None:
    stats["eval"]["labels"]["2"] = {"count": 1, "fraction": 0.0}
    stats["rejected"] = {"count": 2, "by_reason": {"empty_text": 2}}


def _report(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_executor_records_no_anomalies_for_the_sample(tmp_path, prepared_sample):
    run = execute(ExampleValidator(STATISTICS, SCHEMA, EXAMPLES), tmp_path, _inputs(tmp_path, prepared_sample))
    assert run.props("anomalies") == {"count": 0, "kinds": []} and run.result.metrics == {"anomalies": 0}
    report = _report(os.path.join(run.outputs["anomalies"], "anomalies.json"))
    assert report == {"schema": str(tmp_path / "schema" / "schema.json"), "statistics": str(tmp_path / "statistics"),
                      "anomalies": []}


def test_executor_stops_on_anomalies_with_a_report_under_its_own_name(tmp_path, prepared_sample):
    validator = ExampleValidator(STATISTICS, SCHEMA, EXAMPLES, name="EvalDataCheck")
    with pytest.raises(AnomaliesFoundError) as info:
        execute(validator, tmp_path, _inputs(tmp_path, prepared_sample, _unseen_label_and_empty_texts), execution_id=12)
    message = str(info.value)
    assert message.startswith(f"2 anomalies against {tmp_path / 'schema' / 'schema.json'}: ")
    assert "[eval] unseen_label: labels outside the schema's domain: '2' (1 rows)" in message
    assert "[all] empty_text: " in message
    path = tmp_path / "EvalDataCheck" / "reports" / "anomalies-12.json"
    assert message.endswith(f"(report: {path})")
    assert [(a["split"], a["kind"]) for a in _report(path)["anomalies"]] == [("eval", "unseen_label"),
                                                                             ("all", "empty_text")]


def test_executor_only_records_anomalies_when_told_not_to_fail(tmp_path, prepared_sample):
    validator = ExampleValidator(STATISTICS, SCHEMA, EXAMPLES, fail_on_anomalies=False)
    run = execute(validator, tmp_path, _inputs(tmp_path, prepared_sample, _unseen_label_and_empty_texts))
    assert run.props("anomalies") == {"count": 2, "kinds": ["empty_text", "unseen_label"]}
    assert len(_report(os.path.join(run.outputs["anomalies"], "anomalies.json"))["anomalies"]) == 2
    assert not os.path.exists(tmp_path / "ExampleValidator" / "reports")


def test_executor_thresholds_reach_the_validation(tmp_path, prepared_sample):
    def shorter(stats):
        stats["eval"]["tokens"]["p50"] = 6.0                    # the train median is 8 tokens: -25%

    validator = ExampleValidator(STATISTICS, SCHEMA, EXAMPLES, length_drift_threshold=0.2, fail_on_anomalies=False)
    run = execute(validator, tmp_path, _inputs(tmp_path, prepared_sample, shorter))
    assert run.props("anomalies") == {"count": 1, "kinds": ["length_drift"]}
    run = execute(ExampleValidator(STATISTICS, SCHEMA, EXAMPLES), tmp_path / "default",
                  _inputs(tmp_path / "default", prepared_sample, shorter))
    assert run.props("anomalies")["count"] == 0                 # within the default +-50%


def test_executor_names_a_missing_schema(tmp_path, prepared_sample):
    inputs = _inputs(tmp_path, prepared_sample)
    os.remove(tmp_path / "schema" / "schema.json")
    with pytest.raises(PipelineError, match=r"^input 'schema' \(Schema at .*/schema\) has no schema.json$"):
        execute(ExampleValidator(STATISTICS, SCHEMA, EXAMPLES), tmp_path, inputs)
