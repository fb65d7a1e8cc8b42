"""Trainer: ``llm_train``'s library call (``run_experiment``) on the prepared examples."""

import os
from typing import Any

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256


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
        name: Component name.
    """

    INPUTS = {"examples": artifacts.EXAMPLES, "transform_graph": artifacts.TRANSFORM_GRAPH, "base_model": artifacts.MODEL}
    OPTIONAL_INPUTS = frozenset({"base_model"})
    OUTPUTS = {"model": artifacts.MODEL}
    RESUMABLE = True

    def __init__(self, examples: OutputRef, transform_graph: OutputRef, experiment: str, config_files: list[str] | None = None,
                 params_override: str | dict = "", mode: str = "train_and_eval", strategy: str = "one_device",
                 num_devices: int | None = None, base_model: OutputRef | None = None, name: str | None = None):
        if mode not in ("train", "train_and_eval"):
            raise PipelineError(f"component {name or 'Trainer'}: mode must be train or train_and_eval, got '{mode}'")
        super().__init__(name, {"examples": examples, "transform_graph": transform_graph, "base_model": base_model}, {
            "experiment": experiment, "config_files": [os.path.abspath(p) for p in config_files or []],
            "params_override": params_override, "mode": mode, "strategy": strategy, "num_devices": num_devices})

    def extra_fingerprint(self) -> dict[str, Any]:
        """The config files' contents, and the weights of the checkpoint ``task.init_preset`` names.

        A checkpoint directory whose weights are replaced in place then trains again instead
        of being served from the cache.
        """
        from llm_tf.models import presets
        from llm_tf.training import configs, tasks

        extra = {path: file_sha256(path) for path in self.properties["config_files"] if os.path.isfile(path)}
        config = configs.apply_overrides(tasks.experiment_config(self.properties["experiment"]),
                                         self.properties["config_files"], self.properties["params_override"])
        if config.task.init_preset:
            extra["task.init_preset"] = presets.weights_fingerprint(config.task.init_preset)
        return extra

    def resolve_config(self, context: ExecutionContext):
        """The experiment config: defaults, config files, overrides, then the pipeline's wiring."""
        from llm_tf.training import configs, tasks

        props = context.properties
        config = tasks.experiment_config(props["experiment"])
        configs.apply_overrides(config, props["config_files"], props["params_override"])
        wiring: dict[str, Any] = {"task": {"data": {"prepared_dir": context.inputs["examples"].uri}},
                                  "runtime": {"strategy": props["strategy"]}}
        if props["num_devices"] is not None:
            wiring["runtime"]["num_devices"] = props["num_devices"]
        if "base_model" in context.inputs:
            wiring["task"]["init_checkpoint"] = context.inputs["base_model"].uri
        return configs.apply_overrides(config, [], wiring)

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Checks the vocabulary, runs ``run_experiment`` into the ``model`` directory."""
        from llm_tf.data.prepare import TOKENIZER_DIR
        from llm_tf.text.tokenizer import TokenizerConfig
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
                 "params_yaml": os.path.join("params.yaml"), "metrics": clean,
                 "init_checkpoint": config.task.init_checkpoint or ""}
        key = {k: v for k, v in clean.items() if k.startswith("val_") and not k.endswith("loss")}
        return ExecutionResult({"model": props}, {"step": props["step"], **dict(list(key.items())[:2])})
