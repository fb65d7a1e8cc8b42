"""Binding every address of a host on one port, with errors that name the host and port.

The gRPC server checks its port with :func:`check_port_free` (gRPC binds ``localhost`` on every
address it resolves to and succeeds when only some are free); the REST server listens on the
sockets :func:`bind_every_address` returns.
"""

import errno
import socket

from llm_tf.errors import ConfigError

# The address family is missing on this machine (e.g. no IPv6): that address is skipped.
_UNAVAILABLE = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


def bind_every_address(host: str, port: int, what: str) -> list[socket.socket]:
    """Binds ``host:port`` on every address ``host`` resolves to, all on one port.

    With ``port`` 0 the first address gets a free port and the others the same one, so a
    server has one port whatever the name resolves to (``localhost``: 127.0.0.1 and ::1).

    Args:
        host: The interface name or address.
        port: The port; 0 picks a free one.
        what: Named in error messages (``"gRPC"``, ``"REST"``).

    Returns:
        The bound sockets (not listening; the caller owns and closes them).

    Raises:
        ConfigError: ``host`` does not resolve, an address is in use or cannot be bound for a
            reason other than its family being unavailable, or no address could be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"{what}: cannot resolve host {host!r}: {e.strerror}") from None
    bound: list[socket.socket] = []
    seen = set()
    for family, kind, proto, _, sockaddr in infos:
        if (family, sockaddr[0]) in seen:
            continue
        seen.add((family, sockaddr[0]))
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((sockaddr[0], bound[0].getsockname()[1] if bound else port, *sockaddr[2:]))
        except OSError as e:
            sock.close()
            if e.errno in _UNAVAILABLE:
                continue
            for other in bound:
                other.close()
            reason = "port in use" if e.errno == errno.EADDRINUSE else e.strerror
            raise ConfigError(f"{what}: cannot bind {host}:{port}: {reason}") from None
        bound.append(sock)
    if not bound:
        raise ConfigError(f"{what}: cannot bind {host}:{port}: no address of {host} can be bound here")
    return bound


def check_port_free(host: str, port: int, what: str = "port") -> None:
    """Checks that no one listens on ``port`` at any address ``host`` resolves to.

    Args:
        host: The interface name or address.
        port: The port (non-zero).
        what: Named in the message.

    Raises:
        ConfigError: As :func:`bind_every_address` (port in use, bad host).
    """
    for sock in bind_every_address(host, port, what):
        sock.close()
