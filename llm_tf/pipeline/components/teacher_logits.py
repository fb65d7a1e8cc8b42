"""TeacherLogits: the teacher's logits for every student example, computed once
(``llm_train --mode=precompute_teacher_logits``'s library call).

The artifact is a ``task.distillation.teacher_logits_dir``: the student's prepared records with
a ``teacher_logits`` feature added, and ``teacher_logits.json`` saying what produced them
(:mod:`llm_tf.training.teacher_logits`). The distillation config is resolved by the Trainer's
own :func:`llm_tf.pipeline.components.trainer.resolve_config` from the same config files and
overrides the student Trainer gets, with the same wiring (examples -> ``prepared_dir``,
teacher model -> ``teacher_dir``), so the logits are those of the run that reads them; the
student Trainer checks the manifest against its own config before training.
"""

from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.trainer import DISTILLATION, declared_config, resolve_config
from llm_tf.pipeline.errors import PipelineError


class TeacherLogits(Component):
    """Runs the teacher over the train and eval splits of the student's examples.

    The cache key covers only what the logits depend on (:meth:`key_properties`): the input
    artifacts (student examples, teacher model), the data settings of the resolved config
    (splits, ``seq_length``) and ``teacher_checkpoint``. Changing the student's own training
    settings (steps, learning rate, ``student_init_layers``, ...) re-trains the student but
    reuses the logits.

    Args:
        examples: The student's ExampleGen ``examples``.
        teacher_model: The teacher Trainer's ``model`` (a training ``model_dir``).
        config_files: The student Trainer's config files.
        params_override: The student Trainer's overrides.
        experiment: The student Trainer's experiment (``distillation``).
        teacher_blessing: The teacher Evaluator's ``blessing``: when given, a teacher that was
            not blessed does not teach (the component fails, saying why).
        batch_size: Examples per teacher call.
        name: Component name.

    Raises:
        PipelineError: An experiment other than ``distillation``.
    """

    INPUTS = {"examples": artifacts.EXAMPLES, "teacher_model": artifacts.MODEL,
              "teacher_blessing": artifacts.MODEL_BLESSING}
    OPTIONAL_INPUTS = frozenset({"teacher_blessing"})
    OUTPUTS = {"teacher_logits": artifacts.TEACHER_LOGITS}

    def __init__(self, examples: OutputRef, teacher_model: OutputRef, config_files: list[str] | None = None,
                 params_override: str | dict = "", experiment: str = DISTILLATION,
                 teacher_blessing: OutputRef | None = None, batch_size: int = 128, name: str | None = None):
        if experiment != DISTILLATION:
            raise PipelineError(f"component {name or 'TeacherLogits'}: teacher logits are for the "
                                f"'{DISTILLATION}' experiment, not '{experiment}'")
        super().__init__(name, {"examples": examples, "teacher_model": teacher_model,
                                "teacher_blessing": teacher_blessing}, {
            "experiment": experiment, "config_files": [io_utils.abspath(p) for p in config_files or []],
            "params_override": params_override, "batch_size": batch_size})

    def key_properties(self) -> dict[str, Any]:
        """The parts of the declared config the logits depend on (config files' contents included)."""
        config = declared_config(self.properties)
        data = config.task.data
        return {"experiment": self.properties["experiment"], "batch_size": self.properties["batch_size"],
                "train_split": data.train_split, "eval_split": data.eval_split, "seq_length": data.seq_length,
                "teacher_checkpoint": config.task.distillation.teacher_checkpoint}

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Checks the teacher's blessing, resolves the config, runs ``precompute_teacher_logits``."""
        from llm_tf.training.teacher_logits import precompute_teacher_logits

        blessing = context.inputs.get("teacher_blessing")
        if blessing is not None and not blessing.properties.get("blessed"):
            raise PipelineError(f"component {self.name}: the teacher was not blessed, so it does not teach: "
                                f"{blessing.properties.get('reason', 'no reason recorded')}")
        config = resolve_config(context.properties, context.inputs)
        manifest = precompute_teacher_logits(config, context.output_dirs["teacher_logits"],
                                             batch_size=context.properties["batch_size"])
        counts = {split: values["count"] for split, values in manifest["splits"].items()}
        context.log(f"logits of {manifest['teacher_checkpoint']} (step {manifest['teacher_step']}) for "
                    + ", ".join(f"{n:,} {split}" for split, n in counts.items()) + " examples")
        props = {"teacher": manifest["teacher"], "teacher_checkpoint": manifest["teacher_checkpoint"],
                 "teacher_step": manifest["teacher_step"], "teacher_params": manifest["teacher_params"],
                 "prepared_dir": manifest["prepared_dir"], "seq_length": manifest["seq_length"],
                 "teacher_tokenizer": manifest["teacher_tokenizer"], "labels": manifest["labels"], "counts": counts}
        return ExecutionResult({"teacher_logits": props},
                               {**{f"{split}_examples": n for split, n in counts.items()},
                                "teacher_params": manifest["teacher_params"]})
