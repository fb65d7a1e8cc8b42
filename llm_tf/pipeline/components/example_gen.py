"""ExampleGen: raw files to a prepared data set (``llm_prepare``'s library call)."""

import dataclasses
import glob
import json
import os
from typing import Any

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256


def _expand(patterns: list[str]) -> list[str]:
    paths = []
    for pattern in patterns:
        paths.extend(sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern])
    return paths


class ExampleGen(Component):
    """Reads, validates rows, splits and writes TFRecords, vocabulary, statistics and schema.

    Args:
        name: Component name.
        **prepare_options: Fields of :class:`llm_tf.data.prepare.PrepareConfig` other than
            ``output_dir`` (``inputs``, ``eval_inputs``, ``text_field``, ``vocab_size``, ...).

    Raises:
        PipelineError: An option that ``PrepareConfig`` does not have.
    """

    OUTPUTS = {"examples": artifacts.EXAMPLES}

    def __init__(self, name: str | None = None, **prepare_options: Any):
        from llm_tf.data.prepare import PrepareConfig

        known = {f.name for f in dataclasses.fields(PrepareConfig)} - {"output_dir", "overwrite", "progress"}
        unknown = sorted(set(prepare_options) - known)
        if unknown:
            raise PipelineError(f"component {name or 'ExampleGen'}: unknown prepare option(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
        for key in ("inputs", "eval_inputs"):
            prepare_options[key] = [os.path.abspath(p) for p in prepare_options.get(key, [])]
        super().__init__(name, {}, prepare_options)

    def extra_fingerprint(self) -> dict[str, Any]:
        """SHA-256 of every input file, so that changed data re-runs the pipeline."""
        files = _expand(self.properties.get("inputs", []) + self.properties.get("eval_inputs", []))
        return {path: file_sha256(path) for path in files if os.path.isfile(path)}

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Runs ``prepare`` into the ``examples`` directory."""
        from llm_tf.data.prepare import PrepareConfig, prepare

        out = context.output_dirs["examples"]
        result = prepare(PrepareConfig(output_dir=out, overwrite=True, progress=False, **context.properties))
        files = {path: file_sha256(path) for path in _expand(context.properties.get("inputs", [])
                                                             + context.properties.get("eval_inputs", []))}
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        props = {"counts": result.counts, "rejected": result.rejected, "labels": result.labels,
                 "vocab_size": result.vocab_size, "task": summary["task"], "features": summary["features"],
                 "data_files": files}
        metrics = {f"{split}_examples": n for split, n in result.counts.items()}
        metrics["rejected"] = result.rejected
        return ExecutionResult({"examples": props}, metrics)
