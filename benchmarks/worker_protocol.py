"""The worker side of the benchmark worker protocol (see :class:`benchmarks.peers.Worker`).

Worker scripts may run in the peer virtualenv, where neither TensorFlow nor llm-tf's
dependencies are installed, so this module imports only the standard library.
"""

import json
import os
import sys

#: Prefix of the one line a worker prints on stdout per request (other output is ignored).
REPLY = "@@reply "


def serve(handler, ready: dict) -> None:
    """The worker side of the protocol: reply ``ready``, then answer requests until ``exit``.

    Library output printed to stdout goes to stderr.

    Args:
        handler: ``handler(request: dict) -> dict``, called for every request but ``exit``.
        ready: The first reply (what the worker loaded: versions, sizes).
    """
    reply_stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # keep stray prints off the reply channel

    def send(obj: dict) -> None:
        reply_stream.write(REPLY + json.dumps(obj) + "\n")
        reply_stream.flush()

    send({"ready": True, **ready})
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("op") == "exit":
            break
        try:
            send(handler(message))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises WorkerError
            import traceback

            traceback.print_exc()
            send({"error": f"{type(e).__name__}: {e}"})
