"""What every ``mikey`` subcommand shares: the input forms and the error type."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from typing import TextIO

from mikey.errors import MikeyError

__all__ = ["CliError", "mikey_bytes_from_text", "read_input"]


class CliError(MikeyError):
    """Bad command-line input (exit status 2)."""


_KEYMGMT_DATA = re.compile(r'data\s*=\s*"?([A-Za-z0-9+/=]+)"?', re.IGNORECASE)
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def read_input(arg: str | None, stdin: TextIO | None = None) -> str:
    """The text of INPUT: the literal argument, or standard input for ``-`` / no argument."""
    if arg is None or arg == "-":
        return (stdin or sys.stdin).read()
    return arg


def mikey_bytes_from_text(text: str) -> bytes:
    """MIKEY bytes from base64, hex, an ``a=key-mgmt:mikey`` line or a ``KeyMgmt:`` header."""
    text = text.strip()
    if not text:
        raise CliError("empty input")
    low = text.lower()
    if low.startswith("a=key-mgmt:"):
        parts = text.split(":", 1)[1].split()
        if len(parts) != 2 or parts[0].lower() != "mikey":
            raise CliError("a=key-mgmt line does not carry mikey data")
        text = parts[1]
    elif low.startswith(("keymgmt:", "prot=")):
        m = _KEYMGMT_DATA.search(text)
        if m is None:
            raise CliError("KeyMgmt header without data")
        text = m.group(1)
    compact = "".join(text.split())
    if compact.startswith("01") and _HEX.match(compact):
        return bytes.fromhex(compact)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CliError("input is neither base64 nor hex") from None
