"""Tests for llm_tf/bin/common.py (how every binary runs its main)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, gc, os
    from llm_tf.bin.common import run_main
    from llm_tf.errors import DataError

    def main(argv):
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        if os.environ.get("FAIL"):
            raise DataError("data.tsv:3: field 'label': empty")
        print("ran")
        return 0

    run_main(main)
""")


def run(tmp_path, *args, fail=False):
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    env = {"PATH": "/usr/bin:/bin", **({"FAIL": "1"} if fail else {})}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=60)


def test_success_exits_zero_and_exit_handlers_still_run(tmp_path):
    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["ran", "frozen at exit: True"]


@pytest.mark.parametrize("args, code, message", [
    ((), 1, "prog.py: error: data.tsv:3: field 'label': empty"),
    (("extra",), 2, "prog.py: error: unexpected arguments: extra"),
])
def test_errors_are_one_line_with_an_exit_code(tmp_path, args, code, message):
    out = run(tmp_path, *args, fail=not args)
    assert out.returncode == code
    assert out.stderr.strip().splitlines()[-1] == message and "Traceback" not in out.stderr
