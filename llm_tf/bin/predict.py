"""llm_predict: send texts to a model served by TF Serving (or llm_serve) over gRPC.

Prints one line per input: ``label<TAB>score<TAB>text`` for classifiers, ``word/TAG ...`` for
token classifiers (NER), or with ``--json`` one JSON object per line holding every output.

Example:
    llm_predict --server=localhost:8500 --model=sst2 "a gripping, funny film" "a dull mess"
    llm_predict --model=conll --input_file=sentences.txt --json > tags.jsonl
    cat reviews.txt | llm_predict --model=sst2 --version_label=canary --input_file=-
"""

import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from absl import flags

from llm_tf.bin.common import run_main
from llm_tf.errors import ConfigError

FLAGS = flags.FLAGS

flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC API of TF Serving or llm_serve.")
flags.DEFINE_string("model", None, "Model name, as in the server's model config.")
flags.DEFINE_string("signature", "serving_default", "SignatureDef to run; it must take a string input 'text'.")
flags.DEFINE_integer("version", None, "Model version (default: the latest the server serves).")
flags.DEFINE_string("version_label", None, "Version label, e.g. stable or canary (exclusive with --version).")
flags.DEFINE_string("input_file", None,
                    "Read texts from this file, one a line ('-' = stdin), after any TEXT arguments.")
flags.DEFINE_integer("batch_size", 64, "Texts per Predict request.", lower_bound=1)
flags.DEFINE_float("timeout", 10.0, "Seconds each request may take, retries included.", lower_bound=0.001)
flags.DEFINE_integer("retries", 3, "Retries of a request that fails with UNAVAILABLE.", lower_bound=0)
flags.DEFINE_float("wait_seconds", 0.0, "First wait up to this long for the model to be AVAILABLE (0: do not wait).",
                   lower_bound=0.0)
flags.DEFINE_bool("json", False, "Print one JSON object per input with every output.")
flags.mark_flag_as_required("model")

#: --help's groups.
FLAG_GROUPS = {
    "server and model (required: --model)": ["server", "model", "signature", "version", "version_label"],
    "input (TEXT arguments and/or --input_file)": ["input_file", "batch_size"],
    "requests": ["timeout", "retries", "wait_seconds"],
    "output": ["json"],
}


def read_texts(args: list[str], input_file: str | None, stdin: TextIO | None = None) -> Iterator[str]:
    """Returns the texts to predict: the positional arguments, then the lines of ``input_file``.

    Args:
        args: Positional TEXT arguments.
        input_file: A file with one text a line (``-`` = stdin), or None.
        stdin: The stream read for ``-`` (default: ``sys.stdin``).

    Returns:
        A lazy iterator of texts; every line of the file counts, blank ones included, so
        output line N answers input text N.

    Raises:
        ConfigError: ``input_file`` does not exist (at once) or is not UTF-8 (when read).
    """
    if input_file and input_file != "-" and not os.path.isfile(input_file):
        raise ConfigError(f"--input_file={input_file}: no such file")
    return _iter_texts(args, input_file, stdin)


def _iter_texts(args: list[str], input_file: str | None, stdin: TextIO | None) -> Iterator[str]:
    yield from args
    if not input_file:
        return
    if input_file == "-":
        for line in stdin if stdin is not None else sys.stdin:
            yield line.rstrip("\r\n")
        return
    with open(input_file, encoding="utf-8") as f:
        try:
            for line in f:
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise ConfigError(f"--input_file={input_file}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def format_result(text: str, result: dict[str, Any]) -> str:
    """Formats one prediction as a line: classification, NER, or JSON for anything else.

    Args:
        text: The input text.
        result: The decoded outputs for it (from ``ServingClient.predict_texts``).

    Returns:
        ``label<TAB>score<TAB>text`` when there is a ``labels`` output, ``word/TAG ...`` when
        there are ``words`` and ``tags``, else the JSON of :func:`format_json`.
    """
    if isinstance(result.get("words"), list) and isinstance(result.get("tags"), list):
        return " ".join(f"{word}/{tag}" for word, tag in zip(result["words"], result["tags"]))
    label = result.get("labels")
    if isinstance(label, str):
        scores = result.get("scores")
        label_id = result.get("label_ids")
        if isinstance(scores, list) and scores and isinstance(label_id, int) and 0 <= label_id < len(scores):
            score = scores[label_id]
        elif isinstance(scores, list) and scores:
            score = max(scores)
        else:
            score = float("nan")
        return f"{label}\t{score:.4f}\t{text}"
    return format_json(text, result)


def format_json(text: str, result: dict[str, Any]) -> str:
    """Returns one JSON line: ``{"text": ..., <every output>}``."""
    return json.dumps({"text": text, **result}, ensure_ascii=False)


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def main(argv: list[str]) -> int:
    """Predicts the texts given by the flags and arguments; prints one line per text."""
    from llm_tf.bin import startup
    from llm_tf.serving.client import ServingClient

    startup.log_start(devices=False)  # a client: no need to initialise the GPU runtime
    if FLAGS.version is not None and FLAGS.version_label:
        raise ConfigError("give --version or --version_label, not both")
    args = argv[1:]
    if not args and not FLAGS.input_file:
        raise ConfigError("no input: give TEXT arguments or --input_file (- for stdin)")
    texts = read_texts(args, FLAGS.input_file)
    formatter = format_json if FLAGS.json else format_result
    with ServingClient(FLAGS.server, timeout=FLAGS.timeout, retries=FLAGS.retries) as client:
        if FLAGS.wait_seconds > 0:
            client.wait_until_available(FLAGS.model, timeout=FLAGS.wait_seconds)
        for chunk in _chunks(texts, FLAGS.batch_size):
            results = client.predict_texts(FLAGS.model, chunk, batch_size=FLAGS.batch_size,
                                           signature_name=FLAGS.signature, version=FLAGS.version,
                                           version_label=FLAGS.version_label)
            for text, result in zip(chunk, results):
                print(formatter(text, result))
            sys.stdout.flush()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, allow_args=True, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()
