"""The SST-2 sample pipeline end to end: push, gRPC request, lineage, cache, a worse model refused."""

import io
import os
import subprocess
import sys

import pytest

from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.pipeline.lineage import format_lineage
from llm_tf.pipeline.metadata import MetadataStore
from llm_tf.pipeline.runner import LocalRunner
from tests.conftest import REPO, predict_served

ALL = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Exporter", "Evaluator",
       "Quantizer", "InfraValidator", "Pusher"]


def _module():
    return load_pipeline_module(str(REPO / "pipelines" / "sst2_sentiment.py"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sst2")
    paths = {"pipeline_root": str(root / "pipeline"), "serving_model_base_path": str(root / "serving" / "sst2")}
    options = {"latency_runs": "2"}
    result = LocalRunner(out=io.StringIO()).run(_module().create_pipeline(**paths, options=options))
    return paths, options, result


def _run(paths, **kwargs):
    return LocalRunner(out=io.StringIO()).run(_module().create_pipeline(**paths, **kwargs))


def test_sample_pipeline_pushes_a_model_that_answers_over_grpc(first_run):
    paths, _, result = first_run
    assert [c.component for c in result.components] == ALL and result.succeeded
    assert result["Pusher"].metrics == {"pushed": True, "version": 1}
    assert result["Quantizer"].outputs["tflite_models"].properties["files"]
    base = paths["serving_model_base_path"]
    assert sorted(os.listdir(base)) == ["1"]
    [answer] = predict_served(base, ["a warm , funny and beautifully acted story"])
    assert answer["labels"] in ("0", "1") and len(answer["scores"]) == 2


def test_lineage_of_the_pushed_version_names_data_files_vocabulary_and_config(first_run):
    paths, _, _ = first_run
    with MetadataStore(os.path.join(paths["pipeline_root"], "metadata.sqlite")) as store:
        text = format_lineage(store, 1, paths["serving_model_base_path"])
    assert f"data file {REPO}/samples/sst2_sample/train.tsv sha256" in text
    assert f"data file {REPO}/samples/sst2_sample/dev.tsv sha256" in text
    assert "vocabulary " in text and "/tokenizer/vocab.txt" in text
    assert "configs/sentence_classification/sample_tiny.yaml" in text
    assert "/params.yaml (experiment sentence_classification" in text
    assert "code: llm-tf 0.1.0" in text
    # The binary finds the metadata from the pushed version.
    out = subprocess.run([sys.executable, "-m", "llm_tf.bin.pipeline", "lineage", "--model_version=1",
                          f"--serving_model_base_path={paths['serving_model_base_path']}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("model version 1:") and "<- Trainer [Trainer]" in out.stdout


def test_rerun_is_cached_and_a_changed_property_reruns_only_what_depends_on_it(first_run):
    paths, options, _ = first_run
    result = _run(paths, options=options)
    assert all(c.status == "cached" for c in result.components)
    result = _run(paths, options={**options, "threshold": "0.1"})
    reran = [c.component for c in result.components if c.status == "done"]
    assert reran == ["Evaluator", "Pusher"]
    pushed = result["Pusher"].outputs["pushed_model"].properties
    assert pushed["pushed"] is False and pushed["reason"] == "already served as version 1"


def test_a_worse_model_is_not_blessed_and_not_pushed(first_run):
    paths, _, _ = first_run
    result = _run(paths, params_override="trainer.train_steps=20,trainer.optimizer.learning_rate=0.000000001",
                  options={"quantize": "false", "max_drop": "0.01"})
    evaluation = result["Evaluator"].outputs["evaluation"].properties
    assert evaluation["baseline_value"] is not None and set(evaluation["by_length"])
    assert set(evaluation["by_label"]) == {"0", "1"}
    blessing = result["Evaluator"].outputs["blessing"].properties
    assert blessing["blessed"] is False and "worse than the served model's" in blessing["reason"]
    pushed = result["Pusher"].outputs["pushed_model"].properties
    assert pushed["pushed"] is False and "blessing: " in pushed["reason"]
    assert sorted(os.listdir(paths["serving_model_base_path"])) == ["1"]
