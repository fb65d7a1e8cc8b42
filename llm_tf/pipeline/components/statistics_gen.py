"""StatisticsGen: the prepared data's per-split statistics as their own artifact."""

import json
import os

from llm_tf import io_utils
from llm_tf.data.prepared import STATISTICS_FILE
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef


class StatisticsGen(Component):
    """Publishes ``statistics.json`` (computed by ``prepare``) with its key facts.

    Args:
        examples: ExampleGen's ``examples``.
        name: Component name.
    """

    INPUTS = {"examples": artifacts.EXAMPLES}
    OUTPUTS = {"statistics": artifacts.STATISTICS}

    def __init__(self, examples: OutputRef, name: str | None = None):
        super().__init__(name, {"examples": examples})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Copies the statistics; records counts, OOV and truncation rates per split."""
        source = context.input_path("examples", STATISTICS_FILE)
        target = os.path.join(context.output_dirs["statistics"], STATISTICS_FILE)
        io_utils.copy_file(source, target)
        stats = json.loads(io_utils.read_text(target))
        props = {split: {k: stats[split].get(k) for k in ("count", "oov_rate", "truncated_fraction", "duplicates")}
                 for split in ("train", "eval") if split in stats}
        metrics = {f"{split}_oov": v["oov_rate"] for split, v in props.items()}
        return ExecutionResult({"statistics": props}, metrics)
