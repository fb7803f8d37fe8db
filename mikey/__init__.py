"""MIKEY (RFC 3830) protocol core, sans-IO: codec, crypto, exchanges, policy, replay cache."""

from __future__ import annotations

from ._accel import accelerated, wipe
from .codec import Leniency, Message, parse_message
from .errors import DecodeError, MikeyError

__all__ = [
    "DecodeError",
    "Leniency",
    "Message",
    "MikeyError",
    "accelerated",
    "parse_message",
    "wipe",
]
