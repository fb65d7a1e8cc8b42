"""Compiles a pipeline definition to a Kubeflow Pipelines v2 pipeline spec (``llm_pipeline compile``).

The same definition file the local runner runs becomes a KFP pipeline: each of our components
becomes one KFP component whose task runs :func:`llm_tf.pipeline.kfp_executor.run_task` in the
container image; our artifacts are KFP artifacts (``Dataset``, ``Model``, ``Metrics`` or
``Artifact``, with our type, properties and fingerprint in their metadata); the Evaluator and
the InfraValidator return their blessing as a boolean output parameter, and each Pusher runs
inside ``dsl.If`` conditions on them (an unblessed model shows as a skipped Pusher on a
cluster; the Pusher checks both blessings itself too). ``data_dir``, ``params_override``,
``options`` and ``serving_model_base_path`` are pipeline parameters whose defaults are the
values given at compile time; the definition file is a compile-time constant (its absolute
path, else the same file name under ``/opt/llm-tf/pipelines``, where the image keeps it).

Why lightweight Python components and not container components: ``kfp.local``'s
SubprocessRunner runs only lightweight Python components (it refuses container components), so
this one spec is what a cluster runs and what ``llm_pipeline run_kfp_local`` runs here. Each
component's function is generated from our component's inputs and outputs (KFP reads a
function's signature and source); it installs nothing at run time (``install_kfp_package=False``):
the image must hold llm-tf with its ``kfp`` extra.

The kfp package is an optional extra: without it compiling stops with :data:`KFP_MISSING`.
"""

import contextlib
import itertools
import json
import linecache
import os
import re
import tempfile
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts, fingerprint
from llm_tf.pipeline.component import Component
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.definitions import PipelineArgs, build_pipeline
from llm_tf.pipeline.errors import PipelineError

KFP_MISSING = "llm_pipeline compile needs the kfp package: pip install 'llm-tf[kfp]'"
#: The component base image (the Dockerfile's CPU tag, docs/container.md); pass a registry path on a cluster.
DEFAULT_IMAGE = "llm-tf:cpu"
#: Where the image keeps the pipeline definitions (the Dockerfile copies ``pipelines/`` there).
IMAGE_PIPELINES_DIR = "/opt/llm-tf/pipelines"
#: The boolean output parameter of a component with a blessing output (a function's return value).
BLESSED_OUTPUT = "Output"
#: Artifact types whose ``blessed`` property is returned as :data:`BLESSED_OUTPUT`.
BLESSING_TYPES = frozenset({artifacts.MODEL_BLESSING, artifacts.INFRA_BLESSING})
#: Our artifact type -> the KFP artifact class (every other type: ``Artifact``).
KFP_TYPES = {artifacts.EXAMPLES: "Dataset", artifacts.TRANSFER_SET: "Dataset", artifacts.TEACHER_LOGITS: "Dataset",
             artifacts.MODEL: "Model", artifacts.SAVED_MODEL: "Model", artifacts.TFLITE_MODELS: "Model",
             artifacts.MODEL_EVALUATION: "Metrics"}
#: Pipeline parameters (name -> Python type); every task gets them.
PARAMETERS = {"data_dir": "str", "params_override": "str", "options": "dict", "serving_model_base_path": "str"}
#: Other inputs of every task: the compiled task constant, KFP's pipeline root and task id.
TASK_INPUTS = ("llm_tf_task", "pipeline_root", "task_id")
#: ``trainer_resources`` keys -> the KFP task setter.
RESOURCE_SETTERS = {"cpu": "set_cpu_limit", "memory": "set_memory_limit", "accelerator": "set_accelerator_type",
                    "accelerator_count": "set_accelerator_limit"}
_SOURCE_COUNTER = itertools.count()


def import_kfp(message: str = KFP_MISSING):
    """The ``kfp`` module.

    Raises:
        PipelineError: kfp is not installed (``message``, one line).
    """
    try:
        import kfp
        from kfp import compiler, dsl  # noqa: F401  (imported to check that the SDK is whole)
    except ImportError:
        raise PipelineError(message) from None
    return kfp


def kfp_type(artifact_type: str) -> str:
    """The KFP artifact class name (in ``kfp.dsl``) an artifact type of ours maps to."""
    return KFP_TYPES.get(artifact_type, "Artifact")


def interface(component: Component) -> dict[str, Any]:
    """What the compiled task was built from: the class, the input wiring and the outputs.

    The executor rebuilds the pipeline and refuses to run a component whose interface differs
    (pipeline parameters that change the DAG need a new compile).
    """
    kind = type(component)
    return {"class": f"{kind.__module__}.{kind.__qualname__}",
            "inputs": {key: [ref.component, ref.output, ref.type] for key, ref in sorted(component.inputs.items())},
            "outputs": dict(sorted(component.OUTPUTS.items()))}


def returns_blessing(component: Component) -> bool:
    """Whether the component has a blessing output (its task returns :data:`BLESSED_OUTPUT`)."""
    return any(kind in BLESSING_TYPES for kind in component.OUTPUTS.values())


def function_name(component: Component) -> str:
    """A Python identifier for the component's KFP function (KFP names the component after it)."""
    name = re.sub(r"\W+", "_", component.name).strip("_") or "component"
    return f"c_{name}" if name[0].isdigit() else name


def component_source(component: Component) -> str:
    """The Python source of the component's KFP function (KFP embeds it in the spec).

    Raises:
        PipelineError: An input or output name clashes with a task input of every task.
    """
    reserved = set(PARAMETERS) | set(TASK_INPUTS) | {BLESSED_OUTPUT}
    clash = sorted(reserved & (set(component.inputs) | set(component.OUTPUTS)))
    if clash:
        raise PipelineError(f"component {component.name}: input or output name {clash[0]} is reserved under "
                            "Kubeflow Pipelines; rename it")
    params = [f"{key}: Input[{kfp_type(ref.type)}]" for key, ref in component.inputs.items()]
    params += [f"{key}: Output[{kfp_type(kind)}]" for key, kind in component.OUTPUTS.items()]
    params += [f"{key}: {kind}" for key, kind in PARAMETERS.items()] + [f"{key}: str" for key in TASK_INPUTS]
    inputs = ", ".join(f"{key!r}: {key}" for key in component.inputs)
    outputs = ", ".join(f"{key!r}: {key}" for key in component.OUTPUTS)
    parameters = ", ".join(f"{key!r}: {key}" for key in PARAMETERS)
    returns = " -> bool" if returns_blessing(component) else ""
    name = function_name(component)
    return (f"def {name}({', '.join(params)}){returns}:\n"
            f'    """llm_tf component {name} ({type(component).__name__}): runs its executor on KFP artifacts."""\n'
            "    from llm_tf.pipeline.kfp_executor import run_task\n\n"
            f"    return run_task(llm_tf_task, {{{inputs}}}, {{{outputs}}}, {{{parameters}}},\n"
            "                    pipeline_root, task_id)\n")


def _kfp_component(component: Component, image: str):
    """The KFP lightweight component of ``component``, built from :func:`component_source`."""
    from kfp import dsl

    header = "from kfp.dsl import *\nfrom typing import *\n\n"
    source = header + component_source(component)
    filename = f"<llm_tf kfp component {next(_SOURCE_COUNTER)} {component.name}>"
    # KFP reads the function's source with inspect.getsource: linecache holds it (as for code typed in a shell).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (our own generated source)
    return dsl.component(namespace[function_name(component)], base_image=image, install_kfp_package=False)


def kfp_pipeline_name(name: str) -> str:
    """A KFP (and Vertex AI) pipeline name: lower case, digits and hyphens."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:128] or "pipeline"


def parse_resources(resources: dict[str, str] | None) -> dict[str, str]:
    """Checks ``trainer_resources`` (``cpu``, ``memory``, ``accelerator``, ``accelerator_count``).

    Raises:
        PipelineError: An unknown key or a count that is not a positive integer.
    """
    resources = {key.strip(): str(value).strip() for key, value in (resources or {}).items()}
    for key, value in resources.items():
        if key not in RESOURCE_SETTERS:
            raise PipelineError(f"--trainer_resources: unknown key '{key}' (keys: {', '.join(RESOURCE_SETTERS)})")
        if key == "accelerator_count" and not (value.isdigit() and int(value) > 0):
            raise PipelineError(f"--trainer_resources: accelerator_count must be a positive integer, got '{value}'")
    if "accelerator_count" in resources and "accelerator" not in resources:
        raise PipelineError("--trainer_resources: accelerator_count needs accelerator (e.g. NVIDIA_TESLA_T4)")
    return resources


def pipeline_gates(pipeline: Pipeline) -> dict[str, list[str]]:
    """Pusher name -> the components whose blessing output parameter gates it, in input order."""
    from llm_tf.pipeline.components.pusher import Pusher

    return {c.name: list(dict.fromkeys(ref.component for ref in c.inputs.values() if ref.type in BLESSING_TYPES))
            for c in pipeline.components if isinstance(c, Pusher)}


def build_kfp_pipeline(pipeline: Pipeline, pipeline_file: str, args: PipelineArgs, image: str = DEFAULT_IMAGE,
                       enable_cache: bool = True, trainer_resources: dict[str, str] | None = None):
    """Our :class:`Pipeline` as a KFP pipeline (a ``kfp`` graph component, ready to compile).

    Args:
        pipeline: The pipeline built from ``pipeline_file`` with ``args``.
        pipeline_file: Its definition file (each task builds the pipeline from it again).
        args: The arguments it was built with: the pipeline parameters' defaults; the pipeline
            root becomes the spec's default pipeline root.
        image: The component base image.
        enable_cache: KFP's caching of every task but the Pushers (whose effect is outside
            KFP's artifacts; their same-model check keeps them idempotent).
        trainer_resources: Resource limits of every Trainer task (see :func:`parse_resources`).

    Returns:
        The KFP pipeline.

    Raises:
        PipelineError: See :func:`component_source`, :func:`parse_resources`; kfp is missing.
    """
    import_kfp()
    from kfp import dsl

    from llm_tf.pipeline.components.trainer import Trainer

    resources = parse_resources(trainer_resources)
    code = fingerprint.code_fingerprint()
    kfp_components, constants = {}, {}
    for component in pipeline.components:
        kfp_components[component.name] = _kfp_component(component, image)
        constants[component.name] = json.dumps({
            "pipeline_file": os.path.abspath(pipeline_file), "component": component.name,
            "interface": interface(component),
            # KFP's cache key covers the task's inputs: this makes it cover the data files, config
            # files and code the local runner's key covers too (as of compile time).
            "facts": fingerprint.hash_json({"code": code, "extra": component.extra_fingerprint()})}, sort_keys=True)
    gates = pipeline_gates(pipeline)

    def body(data_dir, params_override, options, serving_model_base_path):
        tasks: dict[str, Any] = {}
        for component in pipeline.components:
            kwargs = {key: tasks[ref.component].outputs[ref.output] for key, ref in component.inputs.items()}
            kwargs.update(llm_tf_task=constants[component.name], data_dir=data_dir, params_override=params_override,
                          options=options, serving_model_base_path=serving_model_base_path,
                          pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER, task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER)
            with contextlib.ExitStack() as stack:
                for producer in gates.get(component.name, []):
                    blessed = tasks[producer].outputs[BLESSED_OUTPUT] == True  # noqa: E712  (a KFP condition)
                    stack.enter_context(dsl.If(blessed, name=f"{producer} blessed"))
                task = kfp_components[component.name](**kwargs)
            task.set_display_name(component.name)
            task.set_caching_options(enable_cache and component.name not in gates)
            if isinstance(component, Trainer):
                for key, value in resources.items():
                    getattr(task, RESOURCE_SETTERS[key])(value)
            tasks[component.name] = task

    defaults = {"data_dir": args.data_dir or "", "params_override": args.params_override,
                "options": dict(args.options), "serving_model_base_path": args.serving_model_base_path}

    def pipeline_function(data_dir: str = defaults["data_dir"], params_override: str = defaults["params_override"],
                          options: dict = defaults["options"],
                          serving_model_base_path: str = defaults["serving_model_base_path"]):
        body(data_dir, params_override, options, serving_model_base_path)

    description = f"llm-tf pipeline {pipeline.name} compiled from {os.path.basename(pipeline_file)}"
    return dsl.pipeline(name=kfp_pipeline_name(pipeline.name), description=description,
                        pipeline_root=args.pipeline_root)(pipeline_function)


def compile_pipeline(pipeline_file: str, output: str, args: PipelineArgs, image: str = DEFAULT_IMAGE,
                     enable_cache: bool = True, trainer_resources: dict[str, str] | None = None) -> dict[str, Any]:
    """Builds the pipeline of ``pipeline_file`` and writes its KFP v2 spec to ``output``.

    Args:
        pipeline_file: The pipeline definition file (local).
        output: The spec file (``.yaml``, ``.yml`` or ``.json``), local or ``gs://``; written atomically.
        args: The definition's arguments (local paths are made absolute: the tasks run elsewhere).
        image: The component base image.
        enable_cache: KFP's caching of the tasks (see :func:`build_kfp_pipeline`).
        trainer_resources: Resource limits of the Trainer tasks.

    Returns:
        A summary: output, pipeline name, image, pipeline root, task names, parameters, gates.

    Raises:
        PipelineError: kfp is missing; a bad output name, pipeline file, definition or resource.
        LlmTfError: The definition refused its arguments; the output cannot be written.
    """
    import_kfp()
    from kfp import compiler

    if os.path.splitext(output)[1] not in (".yaml", ".yml", ".json"):
        raise PipelineError(f"--output: {output}: the spec file must end with .yaml (or .yml, .json)")
    io_utils.check_path(output, "--output")
    args = PipelineArgs(pipeline_root=io_utils.abspath(args.pipeline_root),
                        serving_model_base_path=io_utils.abspath(args.serving_model_base_path),
                        data_dir=io_utils.abspath(args.data_dir) if args.data_dir else None,
                        params_override=args.params_override, options=dict(args.options))
    pipeline = build_pipeline(pipeline_file, args)
    kfp_pipeline = build_kfp_pipeline(pipeline, pipeline_file, args, image, enable_cache, trainer_resources)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pipeline" + os.path.splitext(output)[1])
        compiler.Compiler().compile(pipeline_func=kfp_pipeline, package_path=path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    io_utils.atomic_write_text(output, text)
    return {"output": output, "pipeline": kfp_pipeline_name(pipeline.name), "image": image,
            "pipeline_root": args.pipeline_root, "tasks": [c.name for c in pipeline.components],
            "parameters": sorted(PARAMETERS), "gates": pipeline_gates(pipeline)}


def spec_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The leaf tasks of a compiled spec (a parsed YAML), conditions' sub-DAGs included.

    Args:
        spec: The pipeline spec as a dict.

    Returns:
        Display name -> ``{"task", "component", "upstream": sorted display names it reads
        from, "conditions": the enclosing conditions, outermost first, "inputs": its input
        artifact and parameter names}``.
    """
    components = spec.get("components", {})
    found: dict[str, dict[str, Any]] = {}

    def walk(dag: dict, conditions: list[str], outer: dict[str, str]) -> None:
        names = {key: task.get("taskInfo", {}).get("name", key) for key, task in dag.get("tasks", {}).items()}

        def source(value: dict) -> str | None:
            for kind in ("taskOutputArtifact", "taskOutputParameter"):
                if kind in value:
                    return names.get(value[kind]["producerTask"], value[kind]["producerTask"])
            for kind in ("componentInputArtifact", "componentInputParameter"):
                if kind in value:
                    return outer.get(value[kind])
            return None

        for key, task in dag.get("tasks", {}).items():
            component = components.get(task["componentRef"]["name"], {})
            values = {**task.get("inputs", {}).get("artifacts", {}), **task.get("inputs", {}).get("parameters", {})}
            sources = {name: source(value) for name, value in values.items()}
            condition = task.get("triggerPolicy", {}).get("condition")
            if "dag" in component:
                walk(component["dag"], conditions + ([condition] if condition else []),
                     {name: s for name, s in sources.items() if s})
                continue
            upstream = {s for s in sources.values() if s}
            upstream |= {names.get(dep, dep) for dep in task.get("dependentTasks", [])}
            found[names[key]] = {"task": key, "component": task["componentRef"]["name"],
                                 "upstream": sorted(upstream), "inputs": sorted(values),
                                 "conditions": conditions + ([condition] if condition else [])}

    walk(spec.get("root", {}).get("dag", {}), [], {})
    return found
