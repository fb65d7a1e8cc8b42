"""Tests for llm_tf/progress.py: plain lines off a terminal, a tqdm bar with the lines above it on one."""

import re

from llm_tf.progress import StepProgress


def test_plain_lines_name_each_step_and_its_time():
    lines = []
    with StepProgress(2, bar=False, log=lines.append) as progress:
        progress.start("a: converting")
        progress.done("a: converted, 1.00 MB")
        progress.start("a: evaluating")
        progress.done("a: accuracy 90.00%")
    assert lines[0] == "[1/2] a: converting" and lines[2] == "[2/2] a: evaluating"
    assert re.fullmatch(r"\[1/2\] a: converted, 1\.00 MB \(\d+\.\ds\)", lines[1])
    assert re.fullmatch(r"\[2/2\] a: accuracy 90\.00% \(\d+\.\ds\)", lines[3])


def test_off_a_terminal_the_default_is_plain_lines_on_stderr(capsys):
    with StepProgress(1) as progress:      # pytest's stderr is not a terminal
        progress.start("step")
        progress.done("finished")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[1/1] step" and err[1].startswith("[1/1] finished (")


def test_a_bar_shows_the_step_and_keeps_the_done_lines(capsys):
    lines = []
    with StepProgress(2, bar=True, log=lines.append) as progress:
        progress.start("converting")
        progress.done("converted")
        assert progress._bar.n == 1 and progress._bar.desc.startswith("converting")
    err = capsys.readouterr().err
    assert lines == [] and "[1/2] converted (" in err
