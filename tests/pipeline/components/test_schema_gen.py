"""SchemaGen's executor alone: a schema inferred from the train split's statistics (label domain:
the labels training saw), or a curated schema file; missing statistics, split, property or file named."""

import json
import os

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import SchemaGen
from llm_tf.pipeline.errors import PipelineError
from tests.pipeline.components.harness import artifact, execute, ref

STATISTICS = ref(artifacts.STATISTICS, "StatisticsGen", "statistics")
EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")
FEATURES = ["text", "label"]


def _statistics(directory, source: str, drop_train: bool = False) -> str:
    """A StatisticsGen artifact directory holding ``source``'s statistics.json."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(source, "statistics.json"), encoding="utf-8") as f:
        stats = json.load(f)
    if drop_train:
        del stats["train"]
    with open(os.path.join(directory, "statistics.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f)
    return str(directory)


def _inputs(statistics: str, **examples_props) -> dict:
    return {"statistics": artifact(artifacts.STATISTICS, statistics),
            "examples": artifact(artifacts.EXAMPLES, "/examples", **examples_props)}


def test_the_label_domain_is_what_the_train_split_saw(tmp_path, prepared_sample):
    stats = _statistics(tmp_path / "stats", prepared_sample)
    # "2" is a known label (e.g. from the eval files) that training never saw: not in the domain.
    run = execute(SchemaGen(STATISTICS, EXAMPLES), tmp_path, _inputs(stats, labels=["0", "1", "2"], features=FEATURES))
    with open(os.path.join(run.outputs["schema"], "schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    assert schema["task"] == "classification" and schema["count"] == 60
    assert schema["features"]["label"]["domain"] == ["0", "1"] and set(schema["features"]) == set(FEATURES)
    assert set(schema["label_distribution"]) == {"0", "1"}
    assert run.props("schema") == {"task": "classification", "label_domain": ["0", "1"], "curated": False}
    assert run.result.metrics == {"labels": 2}


def test_unlabelled_examples_have_no_domain(tmp_path, prepared_sample):
    stats = _statistics(tmp_path / "stats", prepared_sample)
    run = execute(SchemaGen(STATISTICS, EXAMPLES), tmp_path, _inputs(stats, labels=[], features=["text"]))
    assert run.props("schema") == {"task": "classification", "label_domain": None, "curated": False}
    assert run.result.metrics == {"labels": 0}


def test_a_curated_schema_is_used_as_is(tmp_path):
    curated = {"version": 1, "task": "classification",
               "features": {"text": {"type": "string"}, "label": {"type": "string", "domain": ["neg", "neu", "pos"]}}}
    path = tmp_path / "curated.json"
    path.write_text(json.dumps(curated), encoding="utf-8")
    gen = SchemaGen(STATISTICS, EXAMPLES, schema_file=str(path))
    assert gen.extra_fingerprint() == {"schema_file": json.dumps(curated)}       # its contents are in the cache key
    run = execute(gen, tmp_path, _inputs(str(tmp_path / "no_statistics_needed")))
    with open(os.path.join(run.outputs["schema"], "schema.json"), encoding="utf-8") as f:
        assert json.load(f) == curated
    assert run.props("schema") == {"task": "classification", "label_domain": ["neg", "neu", "pos"], "curated": True}


def test_a_missing_curated_schema_is_named_with_the_component(tmp_path):
    gen = SchemaGen(STATISTICS, EXAMPLES, schema_file=str(tmp_path / "gone.json"), name="CuratedSchema")
    with pytest.raises(PipelineError, match=r"^component CuratedSchema: schema_file .*/gone.json does not exist$"):
        execute(gen, tmp_path, _inputs(str(tmp_path)))


def test_missing_statistics_split_or_features_are_named(tmp_path, prepared_sample):
    with pytest.raises(PipelineError, match=r"input 'statistics' \(ExampleStatistics at .*/none\) has no "
                                            "statistics.json"):
        execute(SchemaGen(STATISTICS, EXAMPLES), tmp_path, _inputs(str(tmp_path / "none"), features=FEATURES))
    no_train = _statistics(tmp_path / "eval_only", prepared_sample, drop_train=True)
    with pytest.raises(PipelineError, match=r"component SchemaGen: .*/eval_only/statistics.json has no train split"):
        execute(SchemaGen(STATISTICS, EXAMPLES), tmp_path, _inputs(no_train, features=FEATURES))
    stats = _statistics(tmp_path / "stats", prepared_sample)
    with pytest.raises(PipelineError, match=r"input 'examples' \(Examples at /examples\) has no property 'features'"):
        execute(SchemaGen(STATISTICS, EXAMPLES), tmp_path, _inputs(str(stats), labels=["0", "1"]))
    assert os.listdir(tmp_path / "out" / "schema") == []
