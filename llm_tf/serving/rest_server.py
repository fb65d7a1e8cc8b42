"""Serves the REST API's WSGI app (:mod:`llm_tf.serving.rest_app`) over HTTP/1.1 with waitress."""

import threading
import time
from collections.abc import Callable
from typing import Any

from llm_tf.errors import ConfigError

try:  # waitress comes with the serving extra
    import waitress.server
    import waitress.trigger
    import waitress.wasyncore
except ImportError as e:
    raise ConfigError(f"llm_tf.serving needs waitress ({e}): pip install 'llm-tf[serving]'") from None

from llm_tf.serving import ports
from llm_tf.serving.rest_app import DEFAULT_MAX_BODY_BYTES

#: Requests the REST server handles at once by default (``ServerOptions.rest_api_num_threads``).
DEFAULT_THREADS = 64
# A connection idle this long between requests is closed.
_IDLE_CONNECTION_SECONDS = 120


class RestServer:
    """Serves a WSGI app with waitress (HTTP/1.1, keep-alive) from a background thread.

    waitress is a production WSGI server: connections stay open between requests (clients
    such as ``requests.Session`` reuse them), requests are parsed and bodies buffered by its
    I/O thread, and a fixed pool of ``threads`` runs the app.

    Args:
        app: The WSGI app (from :func:`~llm_tf.serving.rest_app.make_rest_app`).
        host: Interface to bind, e.g. ``"localhost"`` or ``"0.0.0.0"``; every address it
            resolves to is served, on one port.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        threads: Requests handled at once (TF Serving's ``--rest_api_num_threads``). Each
            request in flight holds one, so under batching this also caps REST batch sizes.
        max_body_bytes: Bodies beyond this are refused by waitress before they are buffered
            (the app answers bodies just over its own limit with TF Serving's JSON error).

    Raises:
        ConfigError: The address cannot be bound (in use, unknown host), naming host and port.
    """

    def __init__(self, app: Any, host: str, port: int, threads: int = DEFAULT_THREADS,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        if threads < 1:
            raise ConfigError(f"REST API threads must be at least 1, got {threads}")
        sockets = ports.bind_every_address(host, port, "REST")
        self._port = sockets[0].getsockname()[1]
        self._map: dict = {}
        try:
            self._server = waitress.server.create_server(
                app, map=self._map, sockets=sockets, threads=threads, ident="llm-tf",
                # Headroom over the app's limit: the app answers "just over" with a JSON error.
                max_request_body_size=2 * max_body_bytes + 1024,
                channel_timeout=_IDLE_CONNECTION_SECONDS,
            )
        except (OSError, ValueError) as e:
            for sock in sockets:
                sock.close()
            raise ConfigError(f"cannot serve the REST API on {host}:{port}: {e}") from None
        self._dispatcher = self._server.task_dispatcher
        self._trigger = next(ch for ch in self._map.values() if isinstance(ch, waitress.trigger.trigger))
        self._thread: threading.Thread | None = None
        self._closed = False
        self.host = host

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._port)

    def start(self) -> None:
        """Starts serving in a daemon thread (idempotent)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._server.run, name=f"rest-server-{self.port}", daemon=True)
            self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stops accepting connections, lets requests in flight finish (up to ``grace`` s) and
        their responses go out, then closes every connection and joins the thread (idempotent).

        Args:
            grace: Seconds requests already received get to finish.
        """
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            waitress.wasyncore.close_all(self._map)
            self._dispatcher.shutdown(cancel_pending=True, timeout=0)
            return
        self._in_loop(self._close_listeners)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.01)
        self._dispatcher.shutdown(cancel_pending=True, timeout=max(0.0, deadline - time.monotonic()))
        self._in_loop(lambda: waitress.wasyncore.close_all(self._map))
        self._thread.join(timeout=max(1.0, grace))
        self._thread = None

    def _close_listeners(self) -> None:
        """Closes the listening sockets (new connections are refused); keeps the trigger."""
        for channel in list(self._map.values()):
            if isinstance(channel, waitress.server.BaseWSGIServer):
                channel.del_channel()
                channel.socket.close()

    def _busy(self) -> bool:
        """Whether a request is queued or running, or a response is not yet fully sent."""
        dispatcher = self._dispatcher
        with dispatcher.lock:
            if dispatcher.queue or dispatcher.active_count:
                return True
        return any(getattr(ch, "requests", None) or getattr(ch, "total_outbufs_len", 0)
                   for ch in list(self._map.values()))

    def _in_loop(self, action: Callable[[], Any]) -> None:
        """Runs ``action`` on the server's I/O thread (waitress's map is not thread-safe)."""
        done = threading.Event()

        def run():
            try:
                action()
            finally:
                done.set()

        self._trigger.pull_trigger(run)
        done.wait(timeout=5.0)


__all__ = ["RestServer"]
