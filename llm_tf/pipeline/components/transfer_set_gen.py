"""TransferSetGen: the distillation transfer set (``llm_transfer_set``'s library call).

The artifact holds ``transfer_set.tsv`` (``sentence<TAB>label<TAB>source``) and its summary
(``transfer_set.tsv.summary.json``). It is not prepared data: an ExampleGen given it as its
``transfer_set`` input prepares it (with the teacher's vocabulary, optionally cut), so that
preparation is implemented once.
"""

import dataclasses
import os
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult
from llm_tf.pipeline.components.common import expand_files, preset_property
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256

#: The transfer set's file name inside the artifact.
TRANSFER_FILE = "transfer_set.tsv"
#: TransferSetConfig fields that name input files (made absolute; their contents are in the cache key).
FILE_FIELDS = ("labelled", "extra", "exclude")


def transfer_file(artifact: artifacts.Artifact) -> str:
    """The TSV inside a TransferSetGen artifact."""
    return artifact.properties.get("path") or os.path.join(artifact.uri, TRANSFER_FILE)


class TransferSetGen(Component):
    """Builds the transfer set: labelled rows, in-domain extra sentences, augmented copies.

    Runs :func:`llm_tf.data.transfer_set.build_transfer_set`, what ``llm_transfer_set`` runs
    (see that module for the sources, deduplication, exclusion of eval texts and augmentation).

    Args:
        name: Component name.
        **config: Fields of :class:`llm_tf.data.transfer_set.TransferSetConfig` (``labelled``,
            ``extra``, ``label_map``, ``exclude``, ``augment_copies``, ``preset``, ...). File
            paths are made absolute. The cache key covers the SHA-256 of every input file and,
            when ``augment_copies`` > 0, the weights and vocabulary of ``preset`` (whose token
            embeddings choose the replacement words).

    Raises:
        PipelineError: A field ``TransferSetConfig`` does not have, or no ``labelled`` file.
    """

    OUTPUTS = {"transfer_set": artifacts.TRANSFER_SET}

    def __init__(self, name: str | None = None, **config: Any):
        from llm_tf.data.transfer_set import TransferSetConfig

        label = name or "TransferSetGen"
        known = {f.name for f in dataclasses.fields(TransferSetConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise PipelineError(f"component {label}: unknown transfer set option(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
        if not config.get("labelled"):
            raise PipelineError(f"component {label}: give at least one labelled file (labelled=[...])")
        for key in FILE_FIELDS:
            config[key] = [io_utils.abspath(p) for p in config.get(key, [])]
        config["preset"] = preset_property(config.get("preset", ""))
        defaults = dataclasses.asdict(TransferSetConfig())
        super().__init__(name, {}, {**defaults, **config})

    def extra_fingerprint(self) -> dict[str, Any]:
        """SHA-256 of every input file; with augmentation, of the checkpoint's weights and vocabulary."""
        extra: dict[str, Any] = {}
        for key in FILE_FIELDS:
            paths = expand_files(self.properties[key])
            extra.update({path: file_sha256(path) for path in paths if io_utils.isfile(path)})
        preset = self.properties["preset"]
        if preset and self.properties["augment_copies"] > 0:
            from llm_tf.models import presets

            extra["preset_weights"] = presets.weights_fingerprint(preset, "preset")
            extra["preset_vocab"] = file_sha256(presets.open_preset(preset, "preset").vocab_file)
        return extra

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Writes ``transfer_set.tsv`` and its summary into the ``transfer_set`` directory."""
        from llm_tf.data.transfer_set import SUMMARY_SUFFIX, TransferSetConfig, build_transfer_set

        path = os.path.join(context.output_dirs["transfer_set"], TRANSFER_FILE)
        summary = build_transfer_set(TransferSetConfig(**context.properties), path)
        context.log(f"{summary['rows']:,} rows: " + ", ".join(f"{k} {v:,}" for k, v in summary["counts"].items())
                    + f"; excluded {sum(summary['excluded'].values()):,} eval texts")
        augmentation = {k: v for k, v in summary["augmentation"].items() if isinstance(v, (int, float, str))}
        props = {"path": path, "summary_file": path + SUMMARY_SUFFIX, "rows": summary["rows"],
                 "counts": summary["counts"], "labels": summary["labels"], "excluded": summary["excluded"],
                 "bad_rows": summary["bad_rows"]["count"], "augmentation": augmentation,
                 "output_sha256": summary["output_sha256"],
                 "data_files": {item["path"]: item["sha256"] for item in summary["inputs"]}}
        return ExecutionResult({"transfer_set": props}, {"rows": summary["rows"], **summary["counts"]})
