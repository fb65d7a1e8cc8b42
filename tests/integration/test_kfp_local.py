"""The compiled SST-2 pipeline run for real by ``kfp.local``, against the local runner on the same inputs.

``llm_pipeline compile`` writes the KFP v2 spec of ``pipelines/sst2_sentiment.py`` on the shipped
sample; ``llm_pipeline run_kfp_local`` runs that very file (loaded with
``kfp.components.load_component_from_text``, run by kfp.local's SubprocessRunner in this
environment: every task a subprocess, the Pusher's blessing conditions evaluated by kfp.local).
It must push version 1, a SavedModel that answers over gRPC.

Then the local runner (``LocalRunner``, its SQLite store and cache; in its own process, as
``llm_pipeline`` runs it) runs the same definition on the same inputs (without the Quantizer,
which the comparison does not need). What is
deterministic, found by running both and comparing every file, and asserted here:

* the data: ExampleGen's artifact is identical except ``summary.json``, which records its own
  output directory and timing: its TFRecords hold equal ``tf.train.Example`` records in the same
  order (their bytes may differ: protobuf serializes the feature map in an order that is not
  fixed across processes), and the vocabulary, labels, statistics, schema and charts are
  byte-identical; StatisticsGen's, SchemaGen's and Transform's artifacts are byte-identical; the
  artifacts' properties are equal (a path into the artifact itself taken relative to it);
* training: on the CPU, with the config's seed, the Trainer's checkpoints are byte-identical
  and its final metrics equal (only the throughput differs), so the pushed versions hold the
  same variables, vocabulary, labels and warm-up requests (``saved_model.pb`` differs: the
  graph records paths) and answer the same sentences with the same scores (to 1e-6);
* evaluation: the Evaluator's candidate metrics (overall, by label, by length, confusion) are equal;
* fingerprints: each artifact's fingerprint is the local runner's cache-key hash, so the pushed
  models' fingerprints are equal when both runs used the same code (always in CI; a checkout
  edited while the test runs changes the code fingerprint between the two runs).

Wall time: 2 to 3 minutes on 2 shared cores (the kfp.local run 1.5 to 2.5 minutes: 11
subprocesses that each import TensorFlow; the local run about 25 s).
"""

import hashlib
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("kfp")

from llm_tf.data.prepared import SUMMARY_FILE  # noqa: E402  (after the skip)
from llm_tf.export.export_dir import ASSETS_DIR, SAVED_MODEL_FILE, WARMUP_FILE  # noqa: E402
from llm_tf.export.export_dir import LABELS_FILE as EXPORT_LABELS_FILE  # noqa: E402
from llm_tf.pipeline.components.evaluator import EVALUATION_FILE  # noqa: E402
from llm_tf.pipeline.components.pusher import pushed_info  # noqa: E402
from llm_tf.pipeline.dag import METADATA_FILE  # noqa: E402
from llm_tf.pipeline.kfp_executor import METADATA_KEY  # noqa: E402
from llm_tf.pipeline.metadata import MetadataStore  # noqa: E402
from llm_tf.training.model_dir import CHECKPOINTS_DIR, METRICS_FILE  # noqa: E402
from tests.conftest import REPO, predict_served  # noqa: E402

PIPELINE = str(REPO / "pipelines" / "sst2_sentiment.py")
BIN = pathlib.Path(sys.executable).parent / "llm_pipeline"
SENTENCES = ["a warm , funny and beautifully acted story", "the worst movie of the year , dull and far too long",
             "an ambitious failure"]
#: kfp.local's task directories (the KFP task names of our components).
TASKS = {"ExampleGen": "examplegen", "StatisticsGen": "statisticsgen", "SchemaGen": "schemagen",
         "ExampleValidator": "examplevalidator", "Transform": "transform", "Trainer": "trainer", "Exporter": "exporter",
         "Evaluator": "evaluator", "Quantizer": "quantizer", "InfraValidator": "infravalidator", "Pusher": "pusher"}


def _run(command: list[str]) -> str:
    out = subprocess.run([str(BIN), *command], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kfp")
    spec = str(tmp / "sst2.yaml")
    compiled = json.loads(_run(["compile", f"--pipeline={PIPELINE}", f"--output={spec}", "--options=latency_runs=2",
                                f"--pipeline_root={tmp}/kfp_root", f"--serving_model_base_path={tmp}/serving_kfp"]))
    kfp = json.loads(_run(["run_kfp_local", f"--package={spec}"]))
    # The local runner in a fresh process too, as llm_pipeline runs it: in this pytest process the
    # state earlier tests leave in TensorFlow and Keras would make its training differ.
    result_file = tmp / "local_result.pickle"
    out = subprocess.run([sys.executable, "-c", LOCAL_RUN, PIPELINE, str(tmp / "local_root"),
                          str(tmp / "serving_local"), str(result_file)], capture_output=True, text=True, cwd=REPO,
                         check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(result_file, "rb") as f:
        local = pickle.load(f)
    return {"compiled": compiled, "kfp": kfp, "local": local, "tmp": tmp}


#: Runs the local runner on the definition (argv: file, pipeline root, serving base path, result pickle).
LOCAL_RUN = """
import io, pickle, sys
from llm_tf.bin import prefer_onednn
prefer_onednn()  # as llm_pipeline (and so every kfp.local task it starts) does, before TensorFlow loads
from llm_tf.pipeline.definitions import PipelineArgs, build_pipeline
from llm_tf.pipeline.runner import LocalRunner
args = PipelineArgs(pipeline_root=sys.argv[2], serving_model_base_path=sys.argv[3],
                    options={"latency_runs": "2", "quantize": "false"})
result = LocalRunner(out=io.StringIO()).run(build_pipeline(sys.argv[1], args))
with open(sys.argv[4], "wb") as f:
    pickle.dump(result, f)
"""


def _kfp_dir(runs, component: str, output: str) -> str:
    return os.path.join(runs["kfp"]["run_dir"], TASKS[component], output)


def _kfp_record(runs, component: str, output: str) -> dict:
    """Our artifact record in the KFP artifact's metadata (kfp.local's executor output)."""
    with open(os.path.join(runs["kfp"]["run_dir"], TASKS[component], "executor_output.json"), encoding="utf-8") as f:
        executor_output = json.load(f)
    [artifact] = executor_output["artifacts"][output]["artifacts"]
    return json.loads(artifact["metadata"][METADATA_KEY])


def _local_dir(runs, component: str, output: str) -> str:
    return runs["local"][component].outputs[output].uri


def _relative(properties: dict, uri: str) -> dict:
    """``properties`` with paths inside the artifact's own directory written relative to it."""
    return json.loads(json.dumps(properties).replace(uri, "<uri>"))


def _files(directory: str) -> dict[str, str | list]:
    """Relative path -> SHA-256 of every file under ``directory``; a TFRecord file's records, parsed.

    A ``tf.train.Example``'s features are a protobuf map, whose serialized order is not fixed
    across processes: equal examples may differ in bytes, so TFRecords are compared parsed.
    """
    import tensorflow as tf

    found: dict[str, str | list] = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(parent, name)
            if name.endswith(".tfrecord"):
                records = tf.data.TFRecordDataset(path).as_numpy_iterator()
                found[os.path.relpath(path, directory)] = [tf.train.Example.FromString(r) for r in records]
                continue
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return found


def test_the_compiled_spec_runs_every_task_and_pushes_a_version(runs):
    assert runs["compiled"]["gates"] == {"Pusher": ["Evaluator", "InfraValidator"]}
    assert sorted(os.listdir(runs["kfp"]["run_dir"])) == sorted(TASKS.values())  # every task ran
    base = str(runs["tmp"] / "serving_kfp")
    assert runs["kfp"]["pushes"] == [{"pushed": True, "version": 1, "path": f"{base}/1",
                                      "serving_model_base_path": base,
                                      "reason": "blessed by Evaluator and InfraValidator"}]
    assert sorted(os.listdir(base)) == ["1"] and os.path.isfile(os.path.join(base, "1", SAVED_MODEL_FILE))
    assert _kfp_record(runs, "Quantizer", "tflite_models")["properties"]["files"]
    assert runs["local"].succeeded and runs["local"]["Pusher"].metrics == {"pushed": True, "version": 1}


def test_the_data_artifacts_equal_the_local_runners(runs):
    kfp_examples = _files(_kfp_dir(runs, "ExampleGen", "examples"))
    local_examples = _files(_local_dir(runs, "ExampleGen", "examples"))
    assert kfp_examples.pop(SUMMARY_FILE) and local_examples.pop(SUMMARY_FILE)
    assert kfp_examples == local_examples and len(kfp_examples) >= 8
    assert len(kfp_examples["examples/train-00000-of-00001.tfrecord"]) == 60
    for component, output in (("StatisticsGen", "statistics"), ("SchemaGen", "schema"),
                              ("Transform", "transform_graph")):
        assert _files(_kfp_dir(runs, component, output)) == _files(_local_dir(runs, component, output)), component
    for component, output in (("ExampleGen", "examples"), ("SchemaGen", "schema"), ("Transform", "transform_graph"),
                              ("ExampleValidator", "anomalies")):
        record = _kfp_record(runs, component, output)
        local = runs["local"][component].outputs[output]
        assert record["type"] == local.type, component
        assert (_relative(record["properties"], _kfp_dir(runs, component, output))
                == _relative(local.properties, local.uri)), component


def test_training_evaluation_and_the_pushed_model_equal_the_local_runners(runs):
    kfp_model, local_model = _kfp_dir(runs, "Trainer", "model"), _local_dir(runs, "Trainer", "model")
    kfp_checkpoints = _files(os.path.join(kfp_model, CHECKPOINTS_DIR))
    local_checkpoints = _files(os.path.join(local_model, CHECKPOINTS_DIR))
    kfp_checkpoints.pop("checkpoint"), local_checkpoints.pop("checkpoint")  # the state file names its directory
    assert kfp_checkpoints == local_checkpoints and kfp_checkpoints
    metrics = [json.loads(pathlib.Path(d, METRICS_FILE).read_text()) for d in (kfp_model, local_model)]
    for values in metrics:
        values.pop("examples_per_s"), values.pop("tokens_per_s")
    assert metrics[0] == metrics[1] and metrics[0]["step"] == 60

    evaluations = [json.loads(pathlib.Path(d, EVALUATION_FILE).read_text())["candidate"]
                   for d in (_kfp_dir(runs, "Evaluator", "evaluation"), _local_dir(runs, "Evaluator", "evaluation"))]
    assert evaluations[0] == evaluations[1]

    kfp_version, local_version = runs["tmp"] / "serving_kfp" / "1", runs["tmp"] / "serving_local" / "1"
    same = ("variables", ASSETS_DIR, WARMUP_FILE, EXPORT_LABELS_FILE)
    for part in same:
        kfp_part, local_part = kfp_version / part, local_version / part
        if kfp_part.is_dir():
            assert _files(str(kfp_part)) == _files(str(local_part)) and _files(str(kfp_part)), part
        else:
            assert kfp_part.read_bytes() == local_part.read_bytes(), part
    answers = [predict_served(str(version.parent), SENTENCES) for version in (kfp_version, local_version)]
    assert [a["labels"] for a in answers[0]] == [a["labels"] for a in answers[1]]
    np.testing.assert_allclose([a["scores"] for a in answers[0]], [a["scores"] for a in answers[1]], atol=1e-6)

    kfp_info, local_info = pushed_info(str(kfp_version)), pushed_info(str(local_version))
    kfp_code = _kfp_record(runs, "Exporter", "saved_model")["code"]["code_fingerprint"]
    with MetadataStore(os.path.join(str(runs["tmp"] / "local_root"), METADATA_FILE)) as store:
        local_code = store.execution(runs["local"]["Exporter"].execution_id)["code_version"]["code_fingerprint"]
    if kfp_code == local_code:  # see the module docstring
        assert kfp_info["model_fingerprint"] == local_info["model_fingerprint"]
    assert "metadata_path" not in kfp_info and kfp_info["pipeline_root"] == str(runs["tmp"] / "kfp_root")
