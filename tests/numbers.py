"""What the number-grammar tests of SIP, SDP and RTSP (and the fuzz mutator) feed a field."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence

from hypothesis import strategies as st

#: every Unicode decimal digit (category Nd) outside ASCII '0'-'9'
NON_ASCII_DIGITS: tuple[str, ...] = tuple(
    c
    for c in map(chr, range(sys.maxunicode + 1))
    if unicodedata.category(c) == "Nd" and not "0" <= c <= "9"
)


def bad_texts(good: str, oddities: Sequence[str]) -> st.SearchStrategy[str]:
    """A valid number with one character swapped for a non-ASCII digit, a lone non-ASCII
    digit, or one of ``oddities``."""
    replaced = st.builds(
        lambda i, d: good[: i % len(good)] + d + good[i % len(good) + 1 :],
        st.integers(0, 10),
        st.sampled_from(NON_ASCII_DIGITS),
    )
    return replaced | st.sampled_from(NON_ASCII_DIGITS) | st.sampled_from(list(oddities))
