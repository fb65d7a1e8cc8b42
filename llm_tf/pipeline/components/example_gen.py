"""ExampleGen: raw files to a prepared data set (``llm_prepare``'s library call).

With ``preset`` (a pre-trained BERT checkpoint: a keras-hub preset directory, a Hugging Face
BERT directory or a named preset such as ``all_minilm_l6_v2``) it tokenizes with the
checkpoint's vocabulary and lower-casing instead of learning a vocabulary, as
``llm_prepare --preset`` does (:func:`llm_tf.models.presets.tokenizer_settings`), so that a
Trainer with ``task.init_preset`` set to the same checkpoint accepts the data.
"""

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


def _preset_settings(name: str, preset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ``preset`` property (normalized) and the checkpoint's tokenizer settings, as ``llm_prepare --preset``."""
    from llm_tf.errors import ConfigError
    from llm_tf.models import named_presets, presets

    try:  # opens and checks the checkpoint once
        settings = presets.tokenizer_settings(preset, options.get("vocab_file", ""), options.get("lower_case", True),
                                              "lower_case" in options, options.get("tokenizer", "wordpiece"),
                                              field="preset")
    except ConfigError as e:
        raise ConfigError(f"component {name}: {e}") from None
    # A directory as open_preset resolved it (presets.resolve_directory: its absolute path).
    return {**settings, "preset": preset if named_presets.is_named(preset) else os.path.abspath(preset)}


class ExampleGen(Component):
    """Reads, validates rows, splits and writes TFRecords, vocabulary, statistics and schema.

    Args:
        name: Component name.
        preset: A pre-trained BERT checkpoint whose vocabulary and lower-casing to use (empty:
            learn a vocabulary). A directory is recorded by its absolute path, a named preset by
            its name (the ``preset`` property; give the same value to the Trainer's
            ``task.init_preset``). ``vocab_file``, ``lower_case`` and ``tokenizer`` become the
            checkpoint's; the vocabulary file's SHA-256 is part of the cache key.
        **prepare_options: Fields of :class:`llm_tf.data.prepare.PrepareConfig` other than
            ``output_dir`` (``inputs``, ``eval_inputs``, ``text_field``, ``vocab_size``, ...).

    Raises:
        PipelineError: An option that ``PrepareConfig`` does not have.
        ConfigError: ``preset`` is not a usable local BERT checkpoint, or a ``vocab_file``,
            ``lower_case`` or ``tokenizer`` option contradicts it.
    """

    OUTPUTS = {"examples": artifacts.EXAMPLES}

    def __init__(self, name: str | None = None, preset: str = "", **prepare_options: Any):
        from llm_tf.data.prepare import PrepareConfig

        known = {f.name for f in dataclasses.fields(PrepareConfig)} - {"output_dir", "overwrite", "progress"}
        unknown = sorted(set(prepare_options) - known)
        if unknown:
            raise PipelineError(f"component {name or 'ExampleGen'}: unknown prepare option(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
        for key in ("inputs", "eval_inputs"):
            prepare_options[key] = [os.path.abspath(p) for p in prepare_options.get(key, [])]
        if preset:
            prepare_options.update(_preset_settings(name or "ExampleGen", preset, prepare_options))
        super().__init__(name, {}, prepare_options)

    def extra_fingerprint(self) -> dict[str, Any]:
        """SHA-256 of every input file and of a given vocabulary (a checkpoint's), so that changed data re-runs."""
        files = _expand(self.properties.get("inputs", []) + self.properties.get("eval_inputs", []))
        if self.properties.get("vocab_file"):
            files.append(self.properties["vocab_file"])
        return {path: file_sha256(path) for path in files if os.path.isfile(path)}

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Runs ``prepare`` into the ``examples`` directory."""
        from llm_tf.data.prepare import PrepareConfig, prepare

        out = context.output_dirs["examples"]
        options = dict(context.properties)
        preset = options.pop("preset", "")
        result = prepare(PrepareConfig(output_dir=out, overwrite=True, progress=False, **options))
        files = {path: file_sha256(path) for path in _expand(context.properties.get("inputs", [])
                                                             + context.properties.get("eval_inputs", []))}
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        props = {"counts": result.counts, "rejected": result.rejected, "labels": result.labels,
                 "vocab_size": result.vocab_size, "task": summary["task"], "features": summary["features"],
                 "data_files": files, "preset": preset,
                 "vocab_origin": f"preset {preset} ({options['vocab_file']})" if preset else summary["vocab"]}
        metrics = {f"{split}_examples": n for split, n in result.counts.items()}
        metrics["rejected"] = result.rejected
        return ExecutionResult({"examples": props}, metrics)
