"""The one number grammar of the sdp package (RFC 4566 §9: ``DIGIT = %x30-39``).

:func:`parse_uint` reads every numeric SDP field: ASCII digits only, a bounded number of them,
explicit bounds, and :class:`~sdp.errors.SdpError` naming the field for anything else. Python's
``str.isdigit()`` and ``int()`` accept other scripts' digits ('٣' reads 3), superscripts ('²'
then raises ValueError), signs, spaces and underscores; none of these are SDP numbers.
"""

from __future__ import annotations

import re

from .errors import SdpError

__all__ = ["MAX_UINT_DIGITS", "parse_uint"]

MAX_UINT_DIGITS = 20  # o= sess-id and sess-version are 64-bit in practice (RFC 4566 §5.2)
_UINT_RE = re.compile(rf"[0-9]{{1,{MAX_UINT_DIGITS}}}")


def parse_uint(text: str, what: str, max_value: int, *, min_value: int = 0) -> int:
    """``text`` as a decimal number of 1 to :data:`MAX_UINT_DIGITS` ASCII digits within bounds.

    Raises :class:`SdpError` naming ``what`` for any other text or a value outside
    ``[min_value, max_value]`` (RFC 4566 §9 ``1*DIGIT``).
    """
    if not _UINT_RE.fullmatch(text):
        raise SdpError(f"malformed {what} (RFC 4566 §9: 1*DIGIT)")
    value = int(text)
    if not min_value <= value <= max_value:
        raise SdpError(f"{what} out of range")
    return value
