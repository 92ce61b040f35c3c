"""Finding TCP ports on the loopback interface that nothing listens on."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out as free; another process could still take it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def is_port_free(port: int) -> bool:
    """Whether a listener could bind `port` on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT would look taken, while servers bind it fine.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def port_or_free(preferred: int) -> int:
    """`preferred` when it is free, otherwise any free port."""
    return preferred if is_port_free(preferred) else free_port()
