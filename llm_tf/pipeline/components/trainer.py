"""Trainer: ``llm_train``'s library call (``run_experiment``) on the prepared examples.

The experiment config is resolved in one place, :func:`resolve_config` (the experiment's
defaults, the config files, the overrides, then the pipeline's wiring of input artifacts),
which TeacherLogits shares so that it computes the logits for exactly the config the student
Trainer trains with.
"""

import os
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256

#: The experiment whose Trainer takes ``teacher_model`` and ``teacher_logits``.
DISTILLATION = "distillation"


def declared_config(properties: dict[str, Any]):
    """The config the properties declare: the experiment's defaults, the config files, the overrides.

    No input artifact is wired in yet (see :func:`resolve_config`), so it can be built when the
    pipeline is defined (cache keys) as well as when it runs.

    Raises:
        ConfigError: A missing or unreadable config file, or an unknown key.
    """
    from llm_tf.training import registry_imports, tasks  # noqa: F401  (registry_imports registers the experiments)

    return tasks.resolve_experiment(properties["experiment"], properties["config_files"],
                                    properties["params_override"])


def resolve_config(properties: dict[str, Any], inputs: dict[str, Artifact]):
    """The experiment config a Trainer with these properties and inputs trains with.

    :func:`declared_config`, then the pipeline's wiring: ``examples`` ->
    ``task.data.prepared_dir``; ``base_model`` -> ``task.init_checkpoint``; ``teacher_model``
    -> ``task.distillation.teacher_dir`` and ``teacher_logits`` ->
    ``task.distillation.teacher_logits_dir`` (emptied when a teacher is wired without logits:
    a path from a config file would hold another teacher's); ``runtime.strategy`` and
    ``runtime.num_devices`` from the properties when present.
    """
    from llm_tf.training import configs

    config = declared_config(properties)
    wiring: dict[str, Any] = {"task": {"data": {"prepared_dir": inputs["examples"].uri}}}
    if "strategy" in properties:
        wiring["runtime"] = {"strategy": properties["strategy"]}
    if properties.get("num_devices") is not None:
        wiring.setdefault("runtime", {})["num_devices"] = properties["num_devices"]
    if "base_model" in inputs:
        wiring["task"]["init_checkpoint"] = inputs["base_model"].uri
    if "teacher_model" in inputs:
        logits = inputs["teacher_logits"].uri if "teacher_logits" in inputs else ""
        wiring["task"]["distillation"] = {"teacher_dir": inputs["teacher_model"].uri, "teacher_logits_dir": logits}
    return configs.apply_overrides(config, [], wiring)


def config_files_fingerprint(properties: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of each config file named in the properties (their contents are in the cache key)."""
    return {path: file_sha256(path) for path in properties["config_files"] if io_utils.isfile(path)}


class Trainer(Component):
    """Trains an experiment; the ``model`` artifact is its ``model_dir``.

    Resumable: a killed or failed training continues, on the next run with the same cache
    key, from its latest checkpoint (the staging directory is kept, keyed by the cache key).

    Args:
        examples: ExampleGen's ``examples`` (becomes ``task.data.prepared_dir``).
        transform_graph: Transform's ``transform_graph`` (its vocabulary must be the one the
            examples were tokenized with; checked).
        experiment: Registered experiment name (``mlm_pretrain``, ``sentence_classification``,
            ``token_classification``).
        config_files: YAML config files, applied in order (their contents are in the cache key).
        params_override: Dotted overrides applied last (as ``llm_train --params_override``).
        mode: ``train_and_eval`` or ``train``.
        strategy: ``runtime.strategy`` (``one_device``, ``mirrored``, ``multi_worker_mirrored``, ``tpu``).
        num_devices: ``runtime.num_devices`` (None: the config's).
        base_model: Another Trainer's ``model`` to start from (``task.init_checkpoint``).
        teacher_model: ``distillation`` only: the teacher Trainer's ``model``
            (``task.distillation.teacher_dir``).
        teacher_logits: ``distillation`` only, with ``teacher_model``: TeacherLogits'
            ``teacher_logits`` (``task.distillation.teacher_logits_dir``); without it the
            teacher runs in every step.
        name: Component name.

    Raises:
        PipelineError: An unknown mode; a teacher for an experiment other than
            ``distillation``; teacher logits without the teacher.
    """

    INPUTS = {"examples": artifacts.EXAMPLES, "transform_graph": artifacts.TRANSFORM_GRAPH,
              "base_model": artifacts.MODEL, "teacher_model": artifacts.MODEL,
              "teacher_logits": artifacts.TEACHER_LOGITS}
    OPTIONAL_INPUTS = frozenset({"base_model", "teacher_model", "teacher_logits"})
    OUTPUTS = {"model": artifacts.MODEL}
    RESUMABLE = True

    def __init__(self, examples: OutputRef, transform_graph: OutputRef, experiment: str,
                 config_files: list[str] | None = None, params_override: str | dict = "",
                 mode: str = "train_and_eval", strategy: str = "one_device",
                 num_devices: int | None = None, base_model: OutputRef | None = None,
                 teacher_model: OutputRef | None = None, teacher_logits: OutputRef | None = None,
                 name: str | None = None):
        label = name or "Trainer"
        if mode not in ("train", "train_and_eval"):
            raise PipelineError(f"component {label}: mode must be train or train_and_eval, got '{mode}'")
        if teacher_model is not None and experiment != DISTILLATION:
            raise PipelineError(f"component {label}: teacher_model is for the '{DISTILLATION}' experiment, not "
                                f"'{experiment}'")
        if teacher_logits is not None and teacher_model is None:
            raise PipelineError(f"component {label}: teacher_logits needs teacher_model (the teacher they came from)")
        super().__init__(name, {"examples": examples, "transform_graph": transform_graph, "base_model": base_model,
                                "teacher_model": teacher_model, "teacher_logits": teacher_logits}, {
            "experiment": experiment, "config_files": [io_utils.abspath(p) for p in config_files or []],
            "params_override": params_override, "mode": mode, "strategy": strategy, "num_devices": num_devices})

    def extra_fingerprint(self) -> dict[str, Any]:
        """The config files' contents, and the weights of the checkpoint ``task.init_preset`` names.

        A checkpoint directory whose weights are replaced in place then trains again instead
        of being served from the cache. Built from the declared config only: the teacher and
        data paths the pipeline wires in are input artifacts, whose fingerprints are in the
        key already (and whose URIs do not exist before the run).
        """
        from llm_tf.models import presets

        extra = config_files_fingerprint(self.properties)
        config = declared_config(self.properties)
        if config.task.init_preset:
            extra["task.init_preset"] = presets.weights_fingerprint(config.task.init_preset)
        return extra

    def resolve_config(self, context: ExecutionContext):
        """The experiment config: defaults, files, overrides, then the wiring (:func:`resolve_config`)."""
        return resolve_config(context.properties, context.inputs)

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Checks the vocabulary, runs ``run_experiment`` into the ``model`` directory."""
        from llm_tf.data.prepared import TOKENIZER_DIR
        from llm_tf.text.tokenizer import TokenizerConfig
        from llm_tf.training import model_dir as model_dir_lib
        from llm_tf.training import train_lib

        examples = context.inputs["examples"].uri
        tokenizer = TokenizerConfig.load(os.path.join(examples, TOKENIZER_DIR))
        vocab = file_sha256(os.path.join(examples, TOKENIZER_DIR, tokenizer.vocab_file))
        if vocab != context.inputs["transform_graph"].properties.get("vocab_sha256"):
            raise PipelineError(f"component {self.name}: the examples in {examples} were tokenized with another "
                                f"vocabulary than transform_graph {context.inputs['transform_graph'].uri}")
        config = self.resolve_config(context)
        model_dir = context.output_dirs["model"]
        metrics = train_lib.run_experiment(config, context.properties["mode"], model_dir)
        clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        props = {"experiment": config.experiment, "step": int(metrics.get("step", 0)),
                 "params_yaml": model_dir_lib.PARAMS_FILE, "metrics": clean,
                 "init_checkpoint": config.task.init_checkpoint or "",
                 artifacts.PLOTS: [model_dir_lib.TRAINING_CURVES_PNG]
                 if io_utils.isfile(os.path.join(model_dir, model_dir_lib.TRAINING_CURVES_PNG)) else []}
        if config.experiment == DISTILLATION:
            props["teacher_dir"] = config.task.distillation.teacher_dir
            props["teacher_logits_dir"] = config.task.distillation.teacher_logits_dir
        key = {k: v for k, v in clean.items() if k.startswith("val_") and not k.endswith("loss")}
        return ExecutionResult({"model": props}, {"step": props["step"], **dict(list(key.items())[:2])})
