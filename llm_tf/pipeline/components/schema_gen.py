"""SchemaGen: a schema inferred from the train split's statistics, or a curated one."""

import json
import os

from llm_tf import io_utils
from llm_tf.data import schema as schema_lib
from llm_tf.data.prepared import SCHEMA_FILE, STATISTICS_FILE
from llm_tf.io_utils import atomic_write_json
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.errors import PipelineError


class SchemaGen(Component):
    """Infers the schema with ``llm_tf.data.schema.infer_schema`` (label domain: train labels).

    ``prepare``'s own ``schema.json`` takes its label domain from train and eval together;
    for validation the domain must be what training saw, so it is re-inferred from the
    train statistics here (same library function).

    Args:
        statistics: StatisticsGen's ``statistics``.
        examples: ExampleGen's ``examples`` (for the feature list).
        schema_file: A curated ``schema.json`` to use instead (TFX's ImportSchemaGen).
        name: Component name.
    """

    INPUTS = {"statistics": artifacts.STATISTICS, "examples": artifacts.EXAMPLES}
    OUTPUTS = {"schema": artifacts.SCHEMA}

    def __init__(self, statistics: OutputRef, examples: OutputRef, schema_file: str = "", name: str | None = None):
        super().__init__(name, {"statistics": statistics, "examples": examples},
                         {"schema_file": io_utils.abspath(schema_file) if schema_file else ""})

    def extra_fingerprint(self) -> dict:
        """The curated schema's contents, when one is given."""
        path = self.properties["schema_file"]
        if path and io_utils.isfile(path):
            return {"schema_file": io_utils.read_text(path)}
        return {}

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Writes ``schema.json``."""
        target = os.path.join(context.output_dirs["schema"], SCHEMA_FILE)
        curated = context.properties["schema_file"]
        if curated:
            if not io_utils.isfile(curated):
                raise PipelineError(f"component {self.name}: schema_file {curated} does not exist")
            io_utils.copy_file(curated, target)
            schema = json.loads(io_utils.read_text(target))
        else:
            path = context.input_path("statistics", STATISTICS_FILE)
            stats = json.loads(io_utils.read_text(path))
            if "train" not in stats:
                raise PipelineError(f"component {self.name}: {path} has no train split (the schema is inferred "
                                    "from it)")
            train = stats["train"]
            features = context.input_property("examples", "features")
            known = context.inputs["examples"].properties.get("labels")
            labels = None
            if known:
                seen = set(train.get("labels", {}))
                labels = [label for label in known if label in seen]
            schema = schema_lib.infer_schema(train, features, labels)
            atomic_write_json(target, schema)
        domain = next((spec["domain"] for spec in schema["features"].values() if "domain" in spec), None)
        return ExecutionResult({"schema": {"task": schema["task"], "label_domain": domain, "curated": bool(curated)}},
                               {"labels": len(domain) if domain else 0})
