"""The SQLite metadata store."""

import os

from llm_tf.pipeline import metadata
from llm_tf.pipeline.artifacts import Artifact


def test_executions_artifacts_events_and_contexts_round_trip(tmp_path):
    uri = tmp_path / "a" / "1"
    uri.mkdir(parents=True)
    with metadata.MetadataStore(str(tmp_path / "m.sqlite")) as store:
        run = store.context("pipeline_run", "p:1", {"x": 1})
        assert store.context("pipeline_run", "p:1") == run
        execution = store.start_execution("A", "Source", "key1", {"v": 1}, {"code_fingerprint": "c"}, [run])
        artifact = Artifact("Examples", str(uri), {"count": 3}, "fp")
        store.add_artifact(artifact)
        store.add_event(execution, artifact.id, "OUTPUT", "data")
        assert store.find_cached("A", "key1") is None          # still RUNNING
        store.finish_execution(execution, metadata.COMPLETE, {"m": 0.5})
    with metadata.MetadataStore(str(tmp_path / "m.sqlite")) as store:   # persisted
        assert store.find_cached("A", "key1") == execution
        assert store.find_cached("A", "other") is None
        record = store.execution(execution)
        assert record["state"] == "COMPLETE" and record["metrics"] == {"m": 0.5} and record["properties"] == {"v": 1}
        outputs = store.outputs(execution)
        assert outputs["data"].properties == {"count": 3} and outputs["data"].fingerprint == "fp"
        assert store.producer(artifact.id) == execution
        assert [e["id"] for e in store.executions_of_context(run)] == [execution]
        assert [c["name"] for c in store.run_contexts("p")] == ["p:1"]


def test_a_completed_execution_whose_artifact_was_deleted_is_not_a_cache_hit(tmp_path):
    uri = tmp_path / "gone"
    uri.mkdir()
    with metadata.MetadataStore(str(tmp_path / "m.sqlite")) as store:
        execution = store.start_execution("A", "Source", "k", {}, {}, [])
        artifact = Artifact("Examples", str(uri), {}, "fp")
        store.add_artifact(artifact)
        store.add_event(execution, artifact.id, "OUTPUT", "data")
        store.finish_execution(execution, metadata.COMPLETE)
        os.rmdir(uri)
        assert store.find_cached("A", "k") is None
