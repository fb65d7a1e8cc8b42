"""Progress of a long job's steps: a tqdm bar on a terminal, one plain line per step otherwise.

Each step starts with :meth:`StepProgress.start` and ends with :meth:`StepProgress.done`, whose
message (with the step's time) is printed either way: above the bar, or as a line after the
step's ``[k/N] ... started`` line (for logs and pipes, where a bar would be noise).
"""

import sys
import time
from collections.abc import Callable


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StepProgress:
    """Reports the ``total`` steps of a job.

    Args:
        total: Steps in the job.
        bar: True: a tqdm bar on stderr; False: plain lines; None: a bar when stderr is a terminal.
        log: Where plain lines go (default: stderr).

    Example::

        with StepProgress(2) as progress:
            progress.start("text_float32: converting")
            ...
            progress.done("text_float32: converted, 1.2 MB")   # "[1/2] text_float32: converted, 1.2 MB (3.1s)"
    """

    def __init__(self, total: int, bar: bool | None = None, log: Callable[[str], None] | None = None):
        self.total = total
        self.step = 0
        self.log = log or _stderr
        self._started = time.perf_counter()
        self._bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)

    def __enter__(self) -> "StepProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _print(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            self.log(message)

    def start(self, what: str) -> None:
        """Begins the next step: the bar's description, or a ``[k/N] what`` line."""
        self.step += 1
        self._started = time.perf_counter()
        if self._bar is not None:
            self._bar.set_description(what)
        else:
            self.log(f"[{self.step}/{self.total}] {what}")

    def done(self, message: str) -> None:
        """Ends the step: ``[k/N] message (seconds)``, and moves the bar on."""
        self._print(f"[{self.step}/{self.total}] {message} ({time.perf_counter() - self._started:.1f}s)")
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Removes the bar (the lines stay)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
