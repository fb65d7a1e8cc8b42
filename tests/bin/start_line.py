"""The start line every TensorFlow-loading binary logs (llm_tf/bin/startup.py), for tests of their stderr."""

import re

#: absl's INFO prefix, then ``<binary>: llm-tf <version>, TensorFlow ...``.
START_LINE = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ startup\.py:\d+\] (llm_\w+): llm-tf \S+, TensorFlow ")


def start_lines(stderr: str) -> list[str]:
    """The start lines in ``stderr`` (a binary logs one)."""
    return [line for line in stderr.splitlines() if START_LINE.match(line)]


def without_start_line(stderr: str) -> str:
    """``stderr`` without the start line: what the binary wrote besides it."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not START_LINE.match(line))
