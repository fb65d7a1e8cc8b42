"""Transform: the tokenizer (vocabulary + how to apply it) and label vocabulary as an artifact."""

import os
import shutil

from llm_tf.data.prepare import TOKENIZER_DIR
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.fingerprint import file_sha256


class Transform(Component):
    """Publishes the in-graph tokenizer ``prepare`` learned (WordPiece/SentencePiece) and ``labels.txt``.

    The tokenizer runs inside the training input pipeline and the exported SavedModel
    (``llm_tf.text.tokenizer.TextTokenizer``), so "transform" here is that graph's assets.

    Args:
        examples: ExampleGen's ``examples``.
        name: Component name.
    """

    INPUTS = {"examples": artifacts.EXAMPLES}
    OUTPUTS = {"transform_graph": artifacts.TRANSFORM_GRAPH}

    def __init__(self, examples: OutputRef, name: str | None = None):
        super().__init__(name, {"examples": examples})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Copies ``tokenizer/`` and ``labels.txt``; records the vocabulary's hash and size."""
        from llm_tf.text.tokenizer import TokenizerConfig

        source = context.inputs["examples"].uri
        out = context.output_dirs["transform_graph"]
        shutil.copytree(os.path.join(source, TOKENIZER_DIR), os.path.join(out, TOKENIZER_DIR))
        if os.path.isfile(os.path.join(source, "labels.txt")):
            shutil.copyfile(os.path.join(source, "labels.txt"), os.path.join(out, "labels.txt"))
        config = TokenizerConfig.load(os.path.join(out, TOKENIZER_DIR))
        vocab = os.path.join(out, TOKENIZER_DIR, config.vocab_file)
        props = {"kind": config.kind, "vocab_file": vocab, "vocab_sha256": file_sha256(vocab),
                 "lower_case": config.lower_case, "vocab_size": context.inputs["examples"].properties.get("vocab_size")}
        return ExecutionResult({"transform_graph": props}, {"vocab_size": props["vocab_size"]})
