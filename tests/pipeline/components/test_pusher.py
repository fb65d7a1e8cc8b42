"""Pusher: pushes only with both blessings, atomically, as the next version; lineage of a push."""

import io
import os

from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.lineage import format_lineage
from llm_tf.pipeline.metadata import MetadataStore
from llm_tf.pipeline.components.pusher import Pusher, pushed_info
from llm_tf.pipeline.runner import LocalRunner
from tests.pipeline.fakes import FakeBlessing, FakeExport, Source


def _pipeline(root, serving, value="model-a", blessed=True, infra=True):
    source = Source(value)
    export = FakeExport(source.output("data"))
    evaluation = FakeBlessing(export.output("saved_model"), "ModelBlessing", blessed, name="Evaluator")
    infra_check = FakeBlessing(export.output("saved_model"), "InfraBlessing", infra, name="InfraValidator")
    pusher = Pusher(export.output("saved_model"), evaluation.output("blessing"), infra_check.output("blessing"), serving)
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
    for blessed, infra, why in ((False, True, "blessing: fixed refusal"), (True, False, "infra_blessing: fixed refusal")):
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
