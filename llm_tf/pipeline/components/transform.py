"""Transform: the tokenizer (vocabulary + how to apply it) and label vocabulary as an artifact."""

import os
import shutil

from llm_tf import io_utils
from llm_tf.data.prepared import LABELS_FILE, TOKENIZER_DIR
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.fingerprint import file_sha256


class Transform(Component):
    """Publishes the in-graph tokenizer ``prepare`` learned (WordPiece/SentencePiece) and ``labels.txt``.

    The tokenizer runs inside the training input pipeline and the exported SavedModel
    (``llm_tf.text.tokenizer.TextTokenizer``), so "transform" here is that graph's assets.
    Its properties say where the vocabulary came from: ``preset`` (the pre-trained checkpoint
    ExampleGen took it from, empty when it was learned) and ``vocab_origin`` (e.g.
    ``preset all_minilm_l6_v2 (.../vocab.txt)`` or ``trained on the train split (wordpiece)``).

    Args:
        examples: ExampleGen's ``examples``.
        name: Component name.
    """

    INPUTS = {"examples": artifacts.EXAMPLES}
    OUTPUTS = {"transform_graph": artifacts.TRANSFORM_GRAPH}

    def __init__(self, examples: OutputRef, name: str | None = None):
        super().__init__(name, {"examples": examples})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Copies ``tokenizer/`` and ``labels.txt``; records the vocabulary's hash, size and origin."""
        from llm_tf.text.tokenizer import TokenizerConfig

        source = context.inputs["examples"].uri
        out = context.output_dirs["transform_graph"]
        tokenizer = context.input_path("examples", TOKENIZER_DIR)
        if io_utils.is_remote(tokenizer) or io_utils.is_remote(out):
            io_utils.copy_tree(tokenizer, os.path.join(out, TOKENIZER_DIR))
        else:
            shutil.copytree(tokenizer, os.path.join(out, TOKENIZER_DIR))
        if io_utils.isfile(os.path.join(source, LABELS_FILE)):
            io_utils.copy_file(os.path.join(source, LABELS_FILE), os.path.join(out, LABELS_FILE))
        config = TokenizerConfig.load(os.path.join(out, TOKENIZER_DIR))
        vocab = os.path.join(out, TOKENIZER_DIR, config.vocab_file)
        examples = context.inputs["examples"].properties
        props = {"kind": config.kind, "vocab_file": vocab, "vocab_sha256": file_sha256(vocab),
                 "lower_case": config.lower_case, "vocab_size": examples.get("vocab_size"),
                 "preset": examples.get("preset", ""), "vocab_origin": examples.get("vocab_origin", "")}
        return ExecutionResult({"transform_graph": props}, {"vocab_size": props["vocab_size"]})

