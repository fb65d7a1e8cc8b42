"""``llm_pipeline compile``: our pipelines as KFP v2 specs, inspected without running them.

Each shipped pipeline compiles to one KFP task per component, wired as our DAG, with the Pusher
under conditions on the Evaluator's and the InfraValidator's blessing parameters; bad input
stops with one line. ``tests/integration/test_kfp_local.py`` runs a compiled spec for real.
"""

import json
import pathlib
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("kfp")

import yaml  # noqa: E402  (after the skip: kfp brings it)

from llm_tf import io_utils  # noqa: E402
from llm_tf.pipeline import artifacts, kfp_compile, kfp_executor  # noqa: E402
from llm_tf.pipeline.component import Component  # noqa: E402
from llm_tf.pipeline.definitions import PipelineArgs, build_pipeline  # noqa: E402
from llm_tf.pipeline.errors import PipelineError  # noqa: E402
from llm_tf.pipeline.kfp_local import run_compiled  # noqa: E402
from tests.conftest import REPO  # noqa: E402

PIPELINES = {"sst2_sentiment": {}, "sst2_distilled": {"teacher": "tiny"}, "conll_ner": {}}


def _args(tmp_path, options: dict) -> PipelineArgs:
    return PipelineArgs(pipeline_root=str(tmp_path / "root"), serving_model_base_path=str(tmp_path / "serving"),
                        params_override="trainer.train_steps=7", options=options)


def _compile(tmp_path, name: str, **kwargs) -> tuple[dict, dict, str]:
    output = str(tmp_path / f"{name}.yaml")
    pipeline_file = str(REPO / "pipelines" / f"{name}.py")
    summary = kfp_compile.compile_pipeline(pipeline_file, output, _args(tmp_path, PIPELINES[name]), **kwargs)
    with open(output, encoding="utf-8") as f:
        return summary, yaml.safe_load(f), output


@pytest.mark.parametrize("name", list(PIPELINES))
def test_each_component_is_one_task_wired_as_our_dag(tmp_path, name):
    summary, spec, _ = _compile(tmp_path, name, image="registry.example/llm-tf:gpu")
    pipeline = build_pipeline(str(REPO / "pipelines" / f"{name}.py"), _args(tmp_path, PIPELINES[name]))
    tasks = kfp_compile.spec_tasks(spec)
    assert sorted(tasks) == sorted(c.name for c in pipeline.components) == sorted(summary["tasks"])
    assert len({t["component"] for t in tasks.values()}) == len(tasks)  # one KFP component each
    for component in pipeline.components:
        task = tasks[component.name]
        assert task["upstream"] == sorted(pipeline.upstream(component)), component.name
        assert set(component.inputs) | set(kfp_compile.PARAMETERS) | set(kfp_compile.TASK_INPUTS) == set(task["inputs"])
        executor = spec["deploymentSpec"]["executors"][spec["components"][task["component"]]["executorLabel"]]
        container = executor["container"]
        assert container["image"] == "registry.example/llm-tf:gpu"
        assert "pip install" not in " ".join(container["command"])  # nothing installed at run time
        assert "kfp.dsl.executor_main" in container["command"][2]  # a lightweight Python component
    assert summary["pipeline"] == spec["pipelineInfo"]["name"] == name.replace("_", "-")


@pytest.mark.parametrize("name", list(PIPELINES))
def test_the_pusher_runs_only_under_both_blessings(tmp_path, name):
    summary, spec, _ = _compile(tmp_path, name)
    tasks = kfp_compile.spec_tasks(spec)
    evaluator = "StudentEvaluator" if name == "sst2_distilled" else "Evaluator"
    assert summary["gates"] == {"Pusher": [evaluator, "InfraValidator"]}
    conditions = tasks["Pusher"]["conditions"]
    assert conditions == [f"inputs.parameter_values['pipelinechannel--{task}-Output'] == true"
                          for task in (tasks[evaluator]["task"], tasks["InfraValidator"]["task"])]
    assert [n for n, t in tasks.items() if t["conditions"]] == ["Pusher"]
    for blesser in (evaluator, "InfraValidator"):  # a boolean output parameter
        outputs = spec["components"][tasks[blesser]["component"]]["outputDefinitions"]
        assert outputs["parameters"] == {"Output": {"parameterType": "BOOLEAN"}}
    # KFP's caching everywhere but the Pusher (its effect is outside KFP's artifacts).
    cached = {n: t.get("cachingOptions", {}).get("enableCache", False) for n, t in _all_task_specs(spec).items()}
    assert cached.pop("Pusher") is False and all(cached.values())


def _all_task_specs(spec: dict) -> dict[str, dict]:
    found = {}
    for component in [spec["root"], *spec["components"].values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            if not task["componentRef"]["name"].startswith("comp-condition"):
                found[task["taskInfo"]["name"]] = task
    return found


def test_parameters_are_the_definitions_arguments_with_the_compile_values_as_defaults(tmp_path):
    summary, spec, _ = _compile(tmp_path, "sst2_sentiment")
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert sorted(parameters) == summary["parameters"] == sorted(kfp_compile.PARAMETERS)
    assert parameters["data_dir"]["defaultValue"] == ""  # the definition's own sample, in each container
    assert parameters["params_override"]["defaultValue"] == "trainer.train_steps=7"
    assert parameters["options"] == {"defaultValue": {}, "isOptional": True, "parameterType": "STRUCT"}
    assert parameters["serving_model_base_path"]["defaultValue"] == str(tmp_path / "serving")
    assert spec["defaultPipelineRoot"] == summary["pipeline_root"] == str(tmp_path / "root")
    task = _all_task_specs(spec)["ExampleGen"]["inputs"]["parameters"]
    assert task["pipeline_root"]["runtimeValue"]["constant"] == "{{$.pipeline_root}}"
    constant = json.loads(task["llm_tf_task"]["runtimeValue"]["constant"])
    assert constant["pipeline_file"] == str(REPO / "pipelines" / "sst2_sentiment.py")
    assert constant["component"] == "ExampleGen" and constant["interface"]["outputs"] == {"examples": "Examples"}


def test_compiling_twice_writes_the_same_spec_and_a_bucket_output_works(tmp_path):
    _, _, first = _compile(tmp_path, "conll_ner")
    bucket = f"ram://kfp-{uuid.uuid4().hex}/conll_ner.yaml"
    kfp_compile.compile_pipeline(str(REPO / "pipelines" / "conll_ner.py"), bucket, _args(tmp_path, {}))
    assert io_utils.read_text(bucket) == pathlib.Path(first).read_text(encoding="utf-8")


def test_trainer_resources_go_to_the_trainer_tasks_only(tmp_path):
    resources = {"cpu": "8", "memory": "32G", "accelerator": "NVIDIA_TESLA_T4", "accelerator_count": "2"}
    _, spec, _ = _compile(tmp_path, "sst2_distilled", trainer_resources=resources)
    executors = spec["deploymentSpec"]["executors"]
    with_resources = sorted(name for name, e in executors.items() if "resources" in e["container"])
    assert with_resources == ["exec-studenttrainer", "exec-teachertrainer"]
    limits = executors["exec-teachertrainer"]["container"]["resources"]
    assert limits["resourceCpuLimit"] == "8" and limits["resourceMemoryLimit"] == "32G"
    assert limits["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4" and limits["accelerator"]["resourceCount"] == "2"


@pytest.mark.parametrize("resources, message", [
    ({"gpu": "1"}, "--trainer_resources: unknown key 'gpu'"),
    ({"accelerator": "T4", "accelerator_count": "two"}, "accelerator_count must be a positive integer"),
    ({"accelerator_count": "1"}, "accelerator_count needs accelerator"),
])
def test_bad_trainer_resources_are_refused(resources, message):
    with pytest.raises(PipelineError, match=message):
        kfp_compile.parse_resources(resources)


def test_bad_output_and_pipeline_file_are_refused(tmp_path):
    with pytest.raises(PipelineError, match=r"^--output: .*sst2\.txt: the spec file must end with \.yaml"):
        kfp_compile.compile_pipeline(str(REPO / "pipelines" / "sst2_sentiment.py"), str(tmp_path / "sst2.txt"),
                                     _args(tmp_path, {}))
    with pytest.raises(PipelineError, match="no such pipeline file"):
        kfp_compile.compile_pipeline(str(tmp_path / "nope.py"), str(tmp_path / "x.yaml"), _args(tmp_path, {}))


def test_a_reserved_input_or_output_name_is_refused():
    class Clashing(Component):
        OUTPUTS = {"options": artifacts.EXAMPLES}

    with pytest.raises(PipelineError, match="component Clashing: input or output name options is reserved"):
        kfp_compile.component_source(Clashing())


def test_without_kfp_compile_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kfp", None)  # import kfp raises ImportError
    with pytest.raises(PipelineError) as error:
        kfp_compile.compile_pipeline(str(REPO / "pipelines" / "sst2_sentiment.py"), str(tmp_path / "x.yaml"),
                                     _args(tmp_path, {}))
    assert str(error.value) == "llm_pipeline compile needs the kfp package: pip install 'llm-tf[kfp]'"


def test_the_binary_compiles_and_refuses_in_one_line(tmp_path):
    command = [str(pathlib.Path(sys.executable).parent / "llm_pipeline"), "compile",
               f"--pipeline={REPO}/pipelines/conll_ner.py", f"--pipeline_root={tmp_path}/root",
               "--trainer_resources=cpu=4"]
    out = subprocess.run(command + [f"--output={tmp_path}/ner.yaml"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["output"] == f"{tmp_path}/ner.yaml" and summary["gates"] == {"Pusher": ["Evaluator",
                                                                                           "InfraValidator"]}
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == ("llm_pipeline: error: compile needs --output (the spec file, "
                                                   "e.g. --output=sst2.yaml)")


def test_run_compiled_refuses_unknown_parameters_and_remote_roots(tmp_path):
    _, _, output = _compile(tmp_path, "conll_ner")
    with pytest.raises(PipelineError, match=r"^threshold: not a parameter of .*conll_ner\.yaml \(parameters: data_dir"):
        run_compiled(output, str(tmp_path / "kfp"), {"threshold": "0.5"})
    with pytest.raises(PipelineError, match="^--pipeline_root: gs://bucket/x: kfp.local writes a local directory only"):
        run_compiled(output, "gs://bucket/x")
    (tmp_path / "not_a_spec.yaml").write_text("a: 1\n")
    with pytest.raises(PipelineError, match="not a KFP pipeline spec"):
        run_compiled(str(tmp_path / "not_a_spec.yaml"), str(tmp_path / "kfp"))


def test_the_executor_refuses_foreign_artifacts_and_a_changed_dag(tmp_path, capsys):
    from kfp import dsl

    with pytest.raises(PipelineError, match="input 'examples' .* was not written by an llm_tf component"):
        kfp_executor.to_artifact("examples", dsl.Dataset(name="examples", uri=str(tmp_path)))
    _, spec, _ = _compile(tmp_path, "sst2_sentiment")
    task = json.loads(_all_task_specs(spec)["Quantizer"]["inputs"]["parameters"]["llm_tf_task"]["runtimeValue"]
                      ["constant"])
    parameters = {"data_dir": "", "params_override": "", "options": {"quantize": "false"},
                  "serving_model_base_path": str(tmp_path / "serving")}
    with pytest.raises(SystemExit) as exit_:
        kfp_executor.run_task(json.dumps(task), {}, {}, parameters, str(tmp_path / "root"), "7")
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "llm_tf component Quantizer: error: component Quantizer: not in the pipeline these parameters build (an "
        "option that changes the DAG?); compile again with them")


def test_artifact_metadata_keeps_our_properties_exactly():
    properties = {"version": 1, "count": 16, "metric": "accuracy", "value": 0.9375, "by_label": {"0": 1.0},
                  "blessed": True, "baseline_value": None}
    metadata = kfp_executor.artifact_metadata(artifacts.MODEL_EVALUATION, properties, "f" * 64, metrics_only=True)
    assert {k: v for k, v in metadata.items() if k != kfp_executor.METADATA_KEY} == {
        "version": 1, "count": 16, "value": 0.9375, "accuracy": 0.9375}
    from kfp import dsl

    restored = kfp_executor.to_artifact("evaluation", dsl.Metrics(name="e", uri="/x", metadata=metadata))
    assert restored.properties == properties and type(restored.properties["version"]) is int
    assert restored.fingerprint == "f" * 64 and restored.type == artifacts.MODEL_EVALUATION and restored.uri == "/x"


def test_a_failing_task_fails_the_run_in_one_line(tmp_path, capfd):
    """kfp.local runs the spec: ExampleGen finds no data, says so in one line, and the run stops."""
    _, _, output = _compile(tmp_path, "conll_ner")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError) as error:
        run_compiled(output, str(tmp_path / "kfp"), {"data_dir": str(tmp_path / "empty")})
    assert str(error.value) == (f"{output}: Pipeline 'conll-ner' finished with status FAILURE. Inner task failed: "
                                "'examplegen'.")
    assert f"llm_tf component ExampleGen: error: {tmp_path}/empty/train.txt: no such file" in capfd.readouterr().out
