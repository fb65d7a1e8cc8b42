"""A pipeline root and a serving base path on a bucket: TensorFlow's in-memory ``ram://`` file
system stands in for ``gs://`` (a real non-local gfile file system, no network); error paths of
``llm_pipeline`` run as the console script."""

import io
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult
from llm_tf.pipeline.components.pusher import PIPELINE_INFO_FILE, Pusher, pushed_info
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import ComponentFailedError, PipelineError
from llm_tf.pipeline.lineage import format_lineage
from llm_tf.pipeline.metadata import MetadataStore
from llm_tf.pipeline.runner import LocalRunner
from tests.pipeline.components.harness import artifact, execute, ref
from tests.pipeline.fakes import FakeBlessing

CALLS: dict[str, int] = {}
FAIL: dict[str, int] = {}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ram(name: str) -> str:
    return f"ram://pipeline-{uuid.uuid4().hex}/{name}"


def _read(path: str) -> str:
    with tf.io.gfile.GFile(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    if tf.io.gfile.exists(path):  # ram:// appends to an existing file where gs:// would replace it
        tf.io.gfile.remove(path)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


class BucketSource(Component):
    """Writes ``data.txt`` through gfile."""

    OUTPUTS = {"data": artifacts.EXAMPLES}

    def __init__(self, value: str = "x", name: str | None = None):
        super().__init__(name, {}, {"value": value})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        path = f"{context.output_dirs['data']}/data.txt"
        _write(path, context.properties["value"])
        return ExecutionResult({"data": {"file": path}})


class BucketStep(Component):
    """Appends ``+``; resumable, fails while ``FAIL[name]`` > 0 after leaving ``progress.txt``."""

    INPUTS = {"data": artifacts.EXAMPLES}
    OUTPUTS = {"data": artifacts.EXAMPLES}
    RESUMABLE = True

    def __init__(self, data, name: str | None = None):
        super().__init__(name, {"data": data})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        CALLS[self.name] = CALLS.get(self.name, 0) + 1
        out = context.output_dirs["data"]
        resumed = tf.io.gfile.exists(f"{out}/progress.txt")
        _write(f"{out}/progress.txt", "half way")
        if FAIL.get(self.name, 0) > 0:
            FAIL[self.name] -= 1
            raise RuntimeError(f"injected failure in {self.name}")
        _write(f"{out}/data.txt", _read(f"{context.inputs['data'].uri}/data.txt") + "+")
        return ExecutionResult({"data": {"resumed": resumed}})


class BucketExport(Component):
    """A SavedModel artifact: ``1/saved_model.pb`` (the input's text) and ``1/variables/variables.index``."""

    INPUTS = {"data": artifacts.EXAMPLES}
    OUTPUTS = {"saved_model": artifacts.SAVED_MODEL}

    def __init__(self, data, name: str | None = None):
        super().__init__(name, {"data": data})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        out = context.output_dirs["saved_model"]
        _write(f"{out}/1/saved_model.pb", _read(f"{context.inputs['data'].uri}/data.txt"))
        _write(f"{out}/1/variables/variables.index", "index")
        return ExecutionResult({"saved_model": {"version": 1}})


@pytest.fixture(autouse=True)
def _local_cwd(tmp_path, monkeypatch):
    """Every test runs in an empty directory and checks that nothing local was written."""
    CALLS.clear()
    FAIL.clear()
    monkeypatch.chdir(tmp_path)
    yield
    assert os.listdir(tmp_path) == [] or os.listdir(tmp_path) == ["local"]


def _pipeline(root, metadata_path=None):
    source = BucketSource("x")
    first = BucketStep(source.output("data"), name="First")
    return Pipeline("p", root, [source, first, BucketStep(first.output("data"), name="Second")], metadata_path)


def _run(pipeline, **kwargs):
    out = io.StringIO()
    return LocalRunner(out=out, **kwargs).run(pipeline), out.getvalue()


def test_artifacts_and_metadata_live_on_the_bucket_and_a_rerun_is_cached():
    root = _ram("root")
    result, text = _run(_pipeline(root + "/"))
    assert result.succeeded and "run p:1 succeeded" in text
    second = result["Second"].outputs["data"]
    assert second.uri == f"{root}/Second/data/{result['Second'].execution_id}"
    assert _read(f"{second.uri}/data.txt") == "x++"
    assert result["BucketSource"].outputs["data"].properties["file"] == (
        f"{result['BucketSource'].outputs['data'].uri}/data.txt")                     # staging path relocated
    assert tf.io.gfile.listdir(f"{root}/Second/data") == [str(result["Second"].execution_id)]  # no staging left
    assert sorted(n.rstrip("/") for n in tf.io.gfile.listdir(root)) == ["BucketSource", "First", "Second",
                                                                        "metadata.sqlite"]
    again, text = _run(_pipeline(root))  # a new store, read from the bucket
    assert [c.status for c in again.components] == ["cached"] * 3 and "run p:2 succeeded" in text
    assert CALLS == {"BucketSource": 1, "First": 1, "Second": 1}
    with MetadataStore(f"{root}/metadata.sqlite") as store:
        assert [r["name"] for r in store.run_contexts("p")] == ["p:1", "p:2"]


def test_a_local_metadata_store_for_a_bucket_root(tmp_path):
    root, local = _ram("root"), str(tmp_path / "local" / "m.sqlite")
    _run(_pipeline(root, metadata_path=local))
    again, _ = _run(_pipeline(root, metadata_path=local))
    assert [c.status for c in again.components] == ["cached"] * 3
    assert os.path.isfile(local) and not tf.io.gfile.exists(f"{root}/metadata.sqlite")
    # Another store (here the bucket default) must not write over those artifacts.
    with pytest.raises(PipelineError, match=r"/BucketSource/data/1: exists already: another metadata store"):
        _run(_pipeline(root))


def test_a_failed_resumable_component_resumes_in_its_bucket_staging_directory():
    root = _ram("root")
    FAIL["Second"] = 1
    with pytest.raises(ComponentFailedError, match="injected failure in Second"):
        _run(_pipeline(root))
    assert [n.rstrip("/") for n in tf.io.gfile.listdir(f"{root}/Second/data")][0].startswith(".staging-")
    with MetadataStore(f"{root}/metadata.sqlite") as store:  # the failure was written back to the bucket
        states = [e["state"] for e in store.executions_of_context(store.context("pipeline_run", "p:1"))]
    assert states == ["COMPLETE", "COMPLETE", "FAILED"]
    result, text = _run(_pipeline(root))
    assert [c.status for c in result.components] == ["cached", "cached", "done"] and "resuming in ram://" in text
    assert result["Second"].outputs["data"].properties["resumed"] is True


def test_a_run_killed_while_publishing_records_no_artifact_and_the_rerun_takes_a_new_id(monkeypatch):
    root = _ram("root")
    real_copy_tree = io_utils.copy_tree

    def killed(source, target, last=()):
        if "/Second/" in target:
            raise KeyboardInterrupt
        return real_copy_tree(source, target, last)

    monkeypatch.setattr(io_utils, "copy_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(_pipeline(root))
    monkeypatch.setattr(io_utils, "copy_tree", real_copy_tree)
    with MetadataStore(f"{root}/metadata.sqlite") as store:
        assert store.artifacts_of_type(artifacts.EXAMPLES) and store.execution(3)["state"] == "RUNNING"
    result, _ = _run(_pipeline(root))
    assert [c.status for c in result.components] == ["cached", "cached", "done"]
    assert result["Second"].execution_id == 6 and _read(f"{root}/Second/data/6/data.txt") == "x++"


def test_two_runs_writing_one_bucket_store_are_refused():
    path = _ram("metadata.sqlite")
    with MetadataStore(path) as first:
        first.context("pipeline", "p")
    with MetadataStore(path) as first, MetadataStore(path) as second:
        first.context("pipeline", "q")
        first.sync()
        second.context("pipeline", "r")
        with pytest.raises(PipelineError, match=r"^ram://.*metadata\.sqlite: another run changed this metadata store"):
            second.sync()
    with MetadataStore(path) as store:
        assert store.context("pipeline", "q") == 2


def _record_copies(monkeypatch) -> list[str]:
    """The targets of every ``tf.io.gfile.copy`` from now on, in order."""
    copied, real_copy = [], tf.io.gfile.copy

    def copy(source, target, overwrite=False):
        copied.append(target)
        real_copy(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", copy)
    return copied


def test_push_to_a_bucket_serving_path_copies_saved_model_pb_last_and_lineage_reads_the_bucket(monkeypatch):
    root, serving = _ram("root"), _ram("serving/m")
    copied = _record_copies(monkeypatch)
    source = BucketSource("model-a")
    export = BucketExport(source.output("data"))
    evaluation = FakeBlessing(export.output("saved_model"), "ModelBlessing", True, name="Evaluator")
    infra = FakeBlessing(export.output("saved_model"), "InfraBlessing", True, name="InfraValidator")
    pusher = Pusher(export.output("saved_model"), evaluation.output("blessing"), infra.output("blessing"), serving)
    result, _ = _run(Pipeline("p", root, [source, export, evaluation, infra, pusher]))
    assert result["Pusher"].metrics == {"pushed": True, "version": 1}
    pushed = [path for path in copied if path.startswith(serving)]
    assert pushed == [f"{serving}/1/variables/variables.index", f"{serving}/1/saved_model.pb"]
    assert _read(f"{serving}/1/saved_model.pb") == "model-a"
    assert tf.io.gfile.isdir(result["Evaluator"].outputs["blessing"].uri)  # an empty artifact exists too
    info = pushed_info(f"{serving}/1")
    assert info["pipeline_root"] == root and info["metadata_path"] == f"{root}/metadata.sqlite"
    with MetadataStore(info["metadata_path"]) as store:
        text = format_lineage(store, 1, serving)
    assert text.startswith(f"model version 1: {serving}/1") and "<- BucketExport " in text


def _saved_model(tmp_path) -> artifacts.Artifact:
    (tmp_path / "export" / "1" / "variables").mkdir(parents=True)
    (tmp_path / "export" / "1" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "export" / "1" / "variables" / "variables.index").write_bytes(b"index")
    return artifact(artifacts.SAVED_MODEL, tmp_path / "export", fingerprint="fp", version=1)


def test_pusher_executor_pushes_a_local_model_to_a_bucket_as_the_next_version(tmp_path, monkeypatch):
    serving = _ram("serving")
    _write(f"{serving}/3/saved_model.pb", "served")
    copied = _record_copies(monkeypatch)
    inputs = {"saved_model": _saved_model(tmp_path / "local"),
              "blessing": artifact(artifacts.MODEL_BLESSING, tmp_path / "b", blessed=True),
              "infra_blessing": artifact(artifacts.INFRA_BLESSING, tmp_path / "i", blessed=True)}
    pusher = Pusher(ref(artifacts.SAVED_MODEL), ref(artifacts.MODEL_BLESSING), ref(artifacts.INFRA_BLESSING), serving)
    run = execute(pusher, tmp_path / "local" / "run", inputs, execution_id=41)
    assert run.props("pushed_model")["version"] == 4 and run.props("pushed_model")["path"] == f"{serving}/4"
    assert copied == [f"{serving}/4/variables/variables.index", f"{serving}/4/saved_model.pb"]
    assert _read(f"{serving}/4/saved_model.pb") == "graph"
    assert pushed_info(f"{serving}/4")["pusher_execution"] == 41
    assert tf.io.gfile.exists(f"{serving}/4/{PIPELINE_INFO_FILE}")
    assert sorted(tf.io.gfile.listdir(serving)) == ["3", "4"]


def _llm_pipeline(*args, cwd):
    executable = shutil.which("llm_pipeline") or os.path.join(os.path.dirname(sys.executable), "llm_pipeline")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_llm_pipeline_with_an_unreachable_bucket_is_one_line_and_writes_nothing(tmp_path):
    pipeline = os.path.join(REPO, "pipelines", "sst2_sentiment.py")
    result = _llm_pipeline(f"--pipeline={pipeline}", "--pipeline_root=gs://llm-tf-no-such-bucket/p",
                           "--serving_model_base_path=gs://llm-tf-no-such-bucket/m", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("llm_pipeline: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "llm_pipeline: error: --pipeline_root: gs://llm-tf-no-such-bucket/p: "), result.stderr
    result = _llm_pipeline(f"--pipeline={pipeline}", "--pipeline_root=nope://x/p", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        "llm_pipeline: error: --pipeline_root: nope://x/p: TensorFlow has no file system for 'nope://' here")
    assert os.listdir(tmp_path) == []
