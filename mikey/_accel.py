"""The optional C accelerator of the key schedule, KEMAC primitives and common codec path, or None.

``mikey/_speedups.c`` computes the MIKEY PRF, HMAC and AES-CTR with OpenSSL in one call each,
the DH modexps and subgroup check, and parses and encodes the common strictly valid message in
one pass (anything else it leaves to the Python codec). :mod:`mikey.prf`, :mod:`mikey.crypto`,
:mod:`mikey.dh` and :mod:`mikey.codec` use it when it was built and keep their pure-Python code
as the reference (and as the fallback where it was not built). Setting the environment variable
``MIKEY_PURE_PYTHON=1`` before import turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["accelerated", "speedups", "wipe"]

try:
    from . import _speedups as speedups
except ImportError:  # built without a C compiler or OpenSSL headers: the Python code runs
    speedups = None  # type: ignore[assignment]

if os.environ.get("MIKEY_PURE_PYTHON", "") not in ("", "0"):
    speedups = None  # type: ignore[assignment]


def accelerated() -> bool:
    """True when the C accelerator is in use."""
    return speedups is not None


def _wipe_python(*buffers: bytearray | memoryview | None) -> None:
    for buf in buffers:
        if buf is not None:
            buf[:] = bytes(len(buf))


#: ``wipe(*buffers)``: overwrite each key buffer with zeros (None is skipped; an immutable
#: object is a TypeError). OPENSSL_cleanse in one call where the accelerator runs.
wipe: Callable[..., None] = _wipe_python if speedups is None else speedups.cleanse
