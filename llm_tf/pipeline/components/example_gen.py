"""ExampleGen: raw files to a prepared data set (``llm_prepare``'s library call).

With ``preset`` (a pre-trained BERT checkpoint: a keras-hub preset directory, a Hugging Face
BERT directory or a named preset such as ``all_minilm_l6_v2``) it tokenizes with the
checkpoint's vocabulary and lower-casing instead of learning a vocabulary, as
``llm_prepare --preset`` does (:func:`llm_tf.models.presets.tokenizer_settings`), so that a
Trainer with ``task.init_preset`` set to the same checkpoint accepts the data.

Two optional inputs let it prepare what another component produced, with the same
``prepare`` call: ``transfer_set`` (a TransferSetGen artifact: its TSV becomes the first
training input) and ``vocabulary`` (a Transform artifact: its vocabulary, lower-casing and
tokenizer kind are used, and ``vocab_cut`` cuts it). A distilled student's examples are the
transfer set tokenized with the teacher's vocabulary, cut to the tokens it uses.
"""

import dataclasses
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.common import expand_files, preset_property
from llm_tf.pipeline.components.transfer_set_gen import transfer_file
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256

#: Prepare options a ``vocabulary`` input sets (giving them too is an error).
VOCABULARY_OPTIONS = ("vocab_file", "lower_case", "tokenizer")
#: The transfer set's text and label columns (``llm_tf.data.transfer_set.OUTPUT_COLUMNS``).
TRANSFER_FIELDS = {"text_field": "sentence", "label_field": "label"}


def _preset_settings(name: str, preset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ``preset`` property (normalized) and the checkpoint's tokenizer settings, as ``llm_prepare --preset``."""
    from llm_tf.errors import ConfigError
    from llm_tf.models import presets

    try:  # opens and checks the checkpoint once
        settings = presets.tokenizer_settings(preset, options.get("vocab_file", ""), options.get("lower_case", True),
                                              "lower_case" in options, options.get("tokenizer", "wordpiece"),
                                              field="preset")
    except ConfigError as e:
        raise ConfigError(f"component {name}: {e}") from None
    return {**settings, "preset": preset_property(preset)}


class ExampleGen(Component):
    """Reads, validates rows, splits and writes TFRecords, vocabulary, statistics and schema.

    Args:
        name: Component name.
        preset: A pre-trained BERT checkpoint whose vocabulary and lower-casing to use (empty:
            learn a vocabulary). A directory is recorded by its absolute path, a named preset by
            its name (the ``preset`` property; give the same value to the Trainer's
            ``task.init_preset``). ``vocab_file``, ``lower_case`` and ``tokenizer`` become the
            checkpoint's; the vocabulary file's SHA-256 is part of the cache key.
        transfer_set: A TransferSetGen's ``transfer_set``: its TSV is the first training input
            (before ``inputs``, which may then be empty); ``text_field`` and ``label_field``
            default to its columns, ``sentence`` and ``label``.
        vocabulary: A Transform's ``transform_graph`` whose vocabulary, lower-casing and
            tokenizer kind to use (not with ``preset``, ``vocab_file``, ``lower_case`` or
            ``tokenizer``); ``vocab_cut`` cuts it to the tokens the training split uses most.
        **prepare_options: Fields of :class:`llm_tf.data.prepare.PrepareConfig` other than
            ``output_dir`` (``inputs``, ``eval_inputs``, ``text_field``, ``vocab_size``,
            ``vocab_cut``, ...).

    Raises:
        PipelineError: An option that ``PrepareConfig`` does not have; ``vocabulary`` with
            another vocabulary setting; ``transfer_set`` with fields other than its columns.
        ConfigError: ``preset`` is not a usable local BERT checkpoint, or a ``vocab_file``,
            ``lower_case`` or ``tokenizer`` option contradicts it.
    """

    INPUTS = {"transfer_set": artifacts.TRANSFER_SET, "vocabulary": artifacts.TRANSFORM_GRAPH}
    OPTIONAL_INPUTS = frozenset({"transfer_set", "vocabulary"})
    OUTPUTS = {"examples": artifacts.EXAMPLES}

    def __init__(self, name: str | None = None, preset: str = "", transfer_set: OutputRef | None = None,
                 vocabulary: OutputRef | None = None, **prepare_options: Any):
        from llm_tf.data.prepare import PrepareConfig

        label = name or "ExampleGen"
        known = {f.name for f in dataclasses.fields(PrepareConfig)} - {"output_dir", "overwrite", "progress"}
        unknown = sorted(set(prepare_options) - known)
        if unknown:
            raise PipelineError(f"component {label}: unknown prepare option(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
        if vocabulary is not None:
            given = [key for key in VOCABULARY_OPTIONS if key in prepare_options] + (["preset"] if preset else [])
            if given:
                raise PipelineError(f"component {label}: the vocabulary input sets the vocabulary; drop "
                                    f"{', '.join(given)}")
        if transfer_set is not None:
            for key, column in TRANSFER_FIELDS.items():
                if prepare_options.setdefault(key, column) != column:
                    raise PipelineError(f"component {label}: a transfer set's {key.split('_')[0]} column is "
                                        f"'{column}', got {key}='{prepare_options[key]}'")
        for key in ("inputs", "eval_inputs"):
            prepare_options[key] = [io_utils.abspath(p) for p in prepare_options.get(key, [])]
        if preset:
            prepare_options.update(_preset_settings(label, preset, prepare_options))
        super().__init__(name, {"transfer_set": transfer_set, "vocabulary": vocabulary}, prepare_options)

    def extra_fingerprint(self) -> dict[str, Any]:
        """SHA-256 of every input file and of a given vocabulary (a checkpoint's), so that changed data re-runs.

        A transfer set and a vocabulary that come as input artifacts are covered by their
        fingerprints.
        """
        files = expand_files(self.properties.get("inputs", []) + self.properties.get("eval_inputs", []))
        if self.properties.get("vocab_file"):
            files.append(self.properties["vocab_file"])
        return {path: file_sha256(path) for path in files if io_utils.isfile(path)}

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Runs ``prepare`` into the ``examples`` directory."""
        from llm_tf.data.prepare import PrepareConfig, prepare
        from llm_tf.data.prepared import SUMMARY_FILE, plot_files, read_json

        out = context.output_dirs["examples"]
        options = dict(context.properties)
        preset = options.pop("preset", "")
        if "transfer_set" in context.inputs:
            options["inputs"] = [transfer_file(context.inputs["transfer_set"])] + options["inputs"]
        graph = context.inputs.get("vocabulary")
        if graph is not None:
            options.update(vocab_file=context.input_property("vocabulary", "vocab_file"),
                           lower_case=context.input_property("vocabulary", "lower_case"),
                           tokenizer=context.input_property("vocabulary", "kind"))
        result = prepare(PrepareConfig(output_dir=out, overwrite=True, progress=False, **options))
        files = {path: file_sha256(path) for path in expand_files(options["inputs"] + options["eval_inputs"])}
        summary = read_json(out, SUMMARY_FILE)
        origin = summary["vocab"]
        if preset:  # a cut says so: "preset X (...): cut to N of the M tokens of ..."
            origin = f"preset {preset} ({options['vocab_file']})" + (f": {origin}" if options.get("vocab_cut") else "")
        if graph is not None:
            known = graph.properties.get("vocab_origin") or "its origin unknown"
            origin += f"; the vocabulary of {graph.uri} ({known})"
        props = {"counts": result.counts, "rejected": result.rejected, "labels": result.labels,
                 "vocab_size": result.vocab_size, "task": summary["task"], "features": summary["features"],
                 "data_files": files, "preset": preset, "vocab_origin": origin, artifacts.PLOTS: plot_files(out)}
        metrics = {f"{split}_examples": n for split, n in result.counts.items()}
        metrics["rejected"] = result.rejected
        return ExecutionResult({"examples": props}, metrics)
