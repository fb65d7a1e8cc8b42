"""Pusher: pushes only with both blessings, atomically, as the next version; lineage of a push.
Then the executor alone, on fake artifacts: what it writes into a version and why it refuses."""

import io
import json
import os

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components.pusher import PIPELINE_INFO_FILE, Pusher, pushed_info
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.lineage import format_lineage
from llm_tf.pipeline.metadata import MetadataStore
from llm_tf.pipeline.runner import LocalRunner
from tests.pipeline.components.harness import artifact, execute, ref
from tests.pipeline.fakes import FakeBlessing, FakeExport, Source


def _pipeline(root, serving, value="model-a", blessed=True, infra=True):
    source = Source(value)
    export = FakeExport(source.output("data"))
    evaluation = FakeBlessing(export.output("saved_model"), "ModelBlessing", blessed, name="Evaluator")
    infra_check = FakeBlessing(export.output("saved_model"), "InfraBlessing", infra, name="InfraValidator")
    pusher = Pusher(export.output("saved_model"), evaluation.output("blessing"), infra_check.output("blessing"),
                    serving)
    return Pipeline("p", str(root), [source, export, evaluation, infra_check, pusher])


def _run(pipeline):
    return LocalRunner(out=io.StringIO()).run(pipeline)


def _served(serving):
    return sorted(n for n in os.listdir(serving)) if os.path.isdir(serving) else []


def test_push_with_both_blessings_adds_the_next_version(tmp_path):
    serving = str(tmp_path / "serving" / "m")
    result = _run(_pipeline(tmp_path / "root", serving))
    assert result["Pusher"].metrics == {"pushed": True, "version": 1}
    assert _served(serving) == ["1"]          # no leftover dot-directories
    with open(os.path.join(serving, "1", "saved_model.pb")) as f:
        assert f.read() == "model-a"
    assert pushed_info(os.path.join(serving, "1"))["pusher_execution"] == result["Pusher"].execution_id
    result = _run(_pipeline(tmp_path / "root", serving, value="model-b"))
    assert result["Pusher"].metrics["version"] == 2 and _served(serving) == ["1", "2"]


def test_a_model_without_a_blessing_is_not_pushed_and_the_served_version_stays(tmp_path):
    serving = str(tmp_path / "serving" / "m")
    _run(_pipeline(tmp_path / "root", serving))
    refusals = ((False, True, "blessing: fixed refusal"), (True, False, "infra_blessing: fixed refusal"))
    for blessed, infra, why in refusals:
        result = _run(_pipeline(tmp_path / "root", serving, value=f"worse-{blessed}", blessed=blessed, infra=infra))
        pushed = result["Pusher"].outputs["pushed_model"]
        assert pushed.properties["pushed"] is False and why in pushed.properties["reason"]
        assert os.path.isfile(os.path.join(pushed.uri, "push.json"))
        assert _served(serving) == ["1"]


def test_the_same_model_is_not_pushed_twice(tmp_path):
    serving = str(tmp_path / "serving" / "m")
    _run(_pipeline(tmp_path / "root", serving))
    result = _run(_pipeline(tmp_path / "root", serving))
    assert result["Pusher"].status == "cached"
    # Without the cache everything re-runs, but the model is the one already served.
    result = LocalRunner(out=io.StringIO(), enable_cache=False).run(_pipeline(tmp_path / "root", serving))
    pushed = result["Pusher"].outputs["pushed_model"].properties
    assert pushed["pushed"] is False and pushed["reason"] == "already served as version 1"
    assert _served(serving) == ["1"]


def test_lineage_of_a_pushed_version_names_every_upstream_step(tmp_path):
    serving = str(tmp_path / "serving" / "m")
    _run(_pipeline(tmp_path / "root", serving))
    with MetadataStore(str(tmp_path / "root" / "metadata.sqlite")) as store:
        text = format_lineage(store, 1, serving)
    assert text.startswith(f"model version 1: {serving}/1")
    for name in ("Source", "FakeExport", "Evaluator", "InfraValidator", "Pusher"):
        assert f"<- {name} " in text
    assert "'value': 'model-a'" in text.replace('"', "'") and "code: llm-tf" in text


# ----------------------------------------------------------------------------- the executor alone
SAVED_MODEL = ref(artifacts.SAVED_MODEL, "Exporter", "saved_model")
BLESSING = ref(artifacts.MODEL_BLESSING, "Evaluator", "blessing")
INFRA = ref(artifacts.INFRA_BLESSING, "InfraValidator", "infra_blessing")


def _saved_model(tmp_path, fingerprint: str = "fp-candidate") -> artifacts.Artifact:
    """An Exporter artifact: ``1/saved_model.pb`` and ``1/variables/variables.index``."""
    (tmp_path / "export" / "1" / "variables").mkdir(parents=True)
    (tmp_path / "export" / "1" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "export" / "1" / "variables" / "variables.index").write_bytes(b"index")
    return artifact(artifacts.SAVED_MODEL, tmp_path / "export", fingerprint=fingerprint, version=1)


def _push(tmp_path, serving, blessed=True, infra=True, saved_model=None):
    inputs = {"saved_model": saved_model or _saved_model(tmp_path),
              "blessing": artifact(artifacts.MODEL_BLESSING, tmp_path / "b", blessed=blessed, reason="accuracy low"),
              "infra_blessing": artifact(artifacts.INFRA_BLESSING, tmp_path / "i", blessed=infra, reason="no load")}
    return execute(Pusher(SAVED_MODEL, BLESSING, INFRA, str(serving)), tmp_path / "run", inputs, execution_id=41)


def _push_record(run) -> dict:
    with open(os.path.join(run.outputs["pushed_model"], "push.json"), encoding="utf-8") as f:
        return json.load(f)


def test_executor_copies_the_version_and_records_where_it_came_from(tmp_path):
    serving = tmp_path / "serving"
    (serving / "3").mkdir(parents=True)            # served already: the push is version 4
    (serving / "not_a_version").mkdir()
    run = _push(tmp_path, serving)
    record = {"pushed": True, "version": 4, "path": str(serving / "4"), "serving_model_base_path": str(serving),
              "reason": "blessed by Evaluator and InfraValidator"}
    assert run.props("pushed_model") == record and _push_record(run) == record
    assert run.result.metrics == {"pushed": True, "version": 4}
    assert sorted(os.listdir(serving)) == ["3", "4", "not_a_version"]            # nothing half-written left
    assert (serving / "4" / "saved_model.pb").read_bytes() == b"graph"
    assert (serving / "4" / "variables" / "variables.index").read_bytes() == b"index"
    assert pushed_info(str(serving / "4")) == {"pipeline_root": str(tmp_path / "run"), "pusher_execution": 41,
                                               "model_fingerprint": "fp-candidate",
                                               "saved_model": str(tmp_path / "export")}
    assert os.path.isfile(serving / "4" / PIPELINE_INFO_FILE) and pushed_info(str(serving / "3")) is None
    assert run.messages == [f"pushed version 4 to {serving / '4'}"]


def test_executor_refuses_without_both_blessings_and_says_why(tmp_path):
    serving = tmp_path / "serving"
    (serving / "1").mkdir(parents=True)
    run = _push(tmp_path, serving, blessed=False, infra=False)
    record = {"pushed": False, "reason": "blessing: accuracy low; infra_blessing: no load",
              "serving_model_base_path": str(serving), "served_versions": [1]}
    assert run.props("pushed_model") == record and _push_record(run) == record
    assert run.result.metrics == {"pushed": False} and os.listdir(serving) == ["1"]
    assert run.messages == ["not pushed: blessing: accuracy low; infra_blessing: no load"]


def test_executor_does_not_push_the_model_served_already(tmp_path):
    serving = tmp_path / "serving"
    first = _push(tmp_path / "first", serving, saved_model=_saved_model(tmp_path / "first", "fp-same"))
    assert first.props("pushed_model")["version"] == 1
    again = _push(tmp_path / "again", serving, saved_model=_saved_model(tmp_path / "again", "fp-same"))
    assert again.props("pushed_model")["reason"] == "already served as version 1" and os.listdir(serving) == ["1"]
    other = _push(tmp_path / "other", serving, saved_model=_saved_model(tmp_path / "other", "fp-other"))
    assert other.props("pushed_model")["version"] == 2


def test_executor_names_a_saved_model_without_its_version_directory(tmp_path):
    (tmp_path / "export").mkdir()
    saved_model = artifact(artifacts.SAVED_MODEL, tmp_path / "export", version=1)
    with pytest.raises(PipelineError, match=r"^component Pusher: input 'saved_model' \(.*/export\) has no version "
                                            r"directory .*/export/1$"):
        _push(tmp_path, tmp_path / "serving", saved_model=saved_model)
    assert not os.path.exists(tmp_path / "serving") or os.listdir(tmp_path / "serving") == []
