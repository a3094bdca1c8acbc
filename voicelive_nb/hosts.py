"""Which hosts are this machine's own. Pure.

One answer for both sides: the emulator and the replay server bind only to a loopback host
unless told otherwise, and the client takes a loopback endpoint for an emulator or a local
peer (no Azure connection budget, the lab's local pacing).
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, bracketed or not)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
