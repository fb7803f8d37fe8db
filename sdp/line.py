"""One SDP line, ``<type>=<value>`` (RFC 4566 §5), kept verbatim."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SdpError

__all__ = ["SdpLine"]


@dataclass(frozen=True, slots=True)
class SdpLine:
    """One ``<type>=<value>`` line, kept verbatim."""

    type: str
    value: str

    def __post_init__(self) -> None:
        # plain string tests: every line of every body passes here, and they beat two regexes
        kind, value = self.type, self.value
        if not (isinstance(kind, str) and len(kind) == 1 and "a" <= kind <= "z"):
            raise SdpError("SDP line type must be one lower-case letter (RFC 4566 §5)")
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\x00" in value:
            raise SdpError("SDP line value contains CR, LF or NUL (RFC 4566 §5)")

    def encode(self) -> str:
        """The line without its line ending."""
        return f"{self.type}={self.value}"

    @property
    def attribute(self) -> tuple[str, str | None] | None:
        """``(name, value)`` for an ``a=`` line (value None for a property attribute)."""
        if self.type != "a":
            return None
        name, sep, value = self.value.partition(":")
        return (name, value if sep else None)
