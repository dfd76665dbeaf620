"""Helpers for testing spikard applications over real loopback sockets."""

from .server import TestServerInfo, running_test_server

__all__ = ["TestServerInfo", "running_test_server"]
