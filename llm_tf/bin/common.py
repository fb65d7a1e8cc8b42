"""What every binary shares: running an absl main with one-line errors."""

import os
import sys
from typing import Callable

from absl import app

from llm_tf.errors import LlmTfError


def run_main(main: Callable[[list[str]], int | None]) -> None:
    """Runs ``main`` under ``absl.app.run``; an :class:`LlmTfError` becomes one line and exit 1.

    ``--flagfile`` and ``--helpfull`` work as in every absl binary. Ctrl-C exits 130.

    Args:
        main: The binary's main, taking argv and returning an exit code or None.
    """
    program = os.path.basename(sys.argv[0]) or "llm_tf"

    def guarded(argv: list[str]) -> int | None:
        if argv[1:]:
            print(f"{program}: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
            return 2
        try:
            return main(argv)
        except LlmTfError as e:
            print(f"{program}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{program}: interrupted", file=sys.stderr)
            return 130

    app.run(guarded)
