"""MIKEY (RFC 3830) protocol core, sans-IO."""

from __future__ import annotations

from .errors import DecodeError, MikeyError

__all__ = ["DecodeError", "MikeyError"]
