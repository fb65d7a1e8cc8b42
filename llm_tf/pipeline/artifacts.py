"""Artifacts: typed, immutable directories with properties, recorded in the metadata store."""

import dataclasses
from typing import Any

#: Artifact types the built-in components produce and consume.
EXAMPLES = "Examples"
STATISTICS = "ExampleStatistics"
SCHEMA = "Schema"
ANOMALIES = "ExampleAnomalies"
TRANSFORM_GRAPH = "TransformGraph"
MODEL = "Model"
MODEL_EVALUATION = "ModelEvaluation"
MODEL_BLESSING = "ModelBlessing"
SAVED_MODEL = "SavedModel"
TFLITE_MODELS = "TFLiteModels"
INFRA_BLESSING = "InfraBlessing"
PUSHED_MODEL = "PushedModel"
#: A distillation transfer set: ``transfer_set.tsv`` (sentence, label, source) and its summary.
TRANSFER_SET = "TransferSet"
#: Precomputed teacher logits: a ``task.distillation.teacher_logits_dir``.
TEACHER_LOGITS = "TeacherLogits"

#: Artifact property: the charts (PNG file names inside the artifact's URI) its component drew;
#: the run summary lists them (:func:`llm_tf.pipeline.runner.format_summary`).
PLOTS = "plots"


@dataclasses.dataclass
class Artifact:
    """One output of one execution.

    Attributes:
        type: The artifact type (one of the constants of this module, or a custom name).
        uri: Its directory, ``<pipeline_root>/<component>/<output>/<execution_id>/``.
        properties: JSON-able facts about it (counts, metrics, blessed, version, ...).
        fingerprint: Hash of what produced it (the producing execution's cache key and the
            output name); consumers' cache keys are built from it.
        id: Its id in the metadata store (0 before it is recorded).
        name: The output name in the producing component.
    """

    type: str
    uri: str
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""
    id: int = 0
    name: str = ""
