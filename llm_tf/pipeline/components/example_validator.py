"""ExampleValidator: every split's statistics against the schema; anomalies stop the run."""

import json
import os

from llm_tf import io_utils
from llm_tf.data import schema as schema_lib
from llm_tf.data.prepared import ANOMALIES_FILE, SCHEMA_FILE, STATISTICS_FILE
from llm_tf.io_utils import atomic_write_json
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.errors import AnomaliesFoundError


class ExampleValidator(Component):
    """Validates with ``llm_tf.data.schema.validate`` (as ``llm_prepare --validate_against``).

    On anomalies the report is written to ``<pipeline_root>/<name>/reports/anomalies-<execution>.json``
    (the failed execution publishes no artifact) and the run stops with one readable line.

    Args:
        statistics: StatisticsGen's ``statistics``.
        schema: SchemaGen's ``schema``.
        examples: ExampleGen's ``examples`` (features, rejected rows).
        label_drift_threshold: Max L-infinity distance between label distributions.
        length_drift_threshold: Max relative change of the median length.
        fail_on_anomalies: Stop the run on anomalies (else only record them).
        name: Component name.
    """

    INPUTS = {"statistics": artifacts.STATISTICS, "schema": artifacts.SCHEMA, "examples": artifacts.EXAMPLES}
    OUTPUTS = {"anomalies": artifacts.ANOMALIES}

    def __init__(self, statistics: OutputRef, schema: OutputRef, examples: OutputRef,
                 label_drift_threshold: float = 0.1, length_drift_threshold: float = 0.5,
                 fail_on_anomalies: bool = True, name: str | None = None):
        super().__init__(name, {"statistics": statistics, "schema": schema, "examples": examples},
                         {"label_drift_threshold": label_drift_threshold,
                          "length_drift_threshold": length_drift_threshold, "fail_on_anomalies": fail_on_anomalies})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Writes ``anomalies.json``; raises :class:`AnomaliesFoundError` when there are any."""
        stats = json.loads(io_utils.read_text(context.input_path("statistics", STATISTICS_FILE)))
        schema_path = context.input_path("schema", SCHEMA_FILE)
        schema = json.loads(io_utils.read_text(schema_path))
        thresholds = schema_lib.Thresholds(context.properties["label_drift_threshold"],
                                           context.properties["length_drift_threshold"])
        features = context.inputs["examples"].properties.get("features")
        found = []
        for split in ("train", "eval"):
            if split in stats:
                for anomaly in schema_lib.validate(stats[split], schema, thresholds, features):
                    found.append({"split": split, **anomaly.to_json()})
        for anomaly in schema_lib.rejected_anomalies(stats.get("rejected", {}).get("by_reason", {})):
            found.append({"split": "all", **anomaly.to_json()})
        report = {"schema": schema_path, "statistics": context.inputs["statistics"].uri, "anomalies": found}
        atomic_write_json(os.path.join(context.output_dirs["anomalies"], ANOMALIES_FILE), report)
        if found and context.properties["fail_on_anomalies"]:
            reports = os.path.join(context.pipeline_root, self.name, "reports")
            io_utils.makedirs(reports)
            path = os.path.join(reports, f"anomalies-{context.execution_id}.json")
            atomic_write_json(path, report)
            described = "; ".join(f"[{a['split']}] {a['kind']}: {a['description']}" for a in found)
            raise AnomaliesFoundError(f"{len(found)} anomalies against {schema_path}: {described} (report: {path})")
        return ExecutionResult({"anomalies": {"count": len(found), "kinds": sorted({a["kind"] for a in found})}},
                               {"anomalies": len(found)})
