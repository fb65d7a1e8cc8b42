"""Tests for llm_tf/serving/ports.py."""

import socket

import pytest

from llm_tf.errors import ConfigError
from llm_tf.serving.ports import bind_every_address, check_port_free


def test_every_address_of_localhost_gets_the_same_free_port():
    sockets = bind_every_address("localhost", 0, "REST")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)}
        assert {s.getsockname()[0] for s in sockets} == addresses
        assert len({s.getsockname()[1] for s in sockets}) == 1
    finally:
        for s in sockets:
            s.close()


def test_a_port_in_use_is_named():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"^gRPC: cannot bind localhost:{port}: port in use$"):
            check_port_free("localhost", port, "gRPC")
    check_port_free("localhost", port, "gRPC")  # free again: no error, nothing left bound


def test_an_unknown_host_is_named():
    with pytest.raises(ConfigError, match="^REST: cannot resolve host 'no-such-host.invalid'"):
        bind_every_address("no-such-host.invalid", 0, "REST")
