"""The integrator helpers key_mgmt_line / parse_key_mgmt (sdp.helpers, RFC 4567 §3.1).

Oracles: the ``a=key-mgmt:mikey <base64>`` line of RFC 4567 §3.1 and the session- and
media-level placement of its §4 examples; the MIKEY vector is the reference PSK I_MESSAGE of
tests/rtspglue/test_keymgmt.py; round trips under Hypothesis.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdp import KeyMgmtDataError, SdpError, key_mgmt_line, parse_key_mgmt
from tests.rtspglue.test_keymgmt import B64, MIKEY

HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def test_line_and_back() -> None:
    line = key_mgmt_line(MIKEY)
    assert line == f"a=key-mgmt:mikey {B64}"
    assert parse_key_mgmt(line) == MIKEY
    assert parse_key_mgmt(line + "\r\n") == MIKEY
    assert parse_key_mgmt(f"key-mgmt:mikey {B64}") == MIKEY
    assert parse_key_mgmt(f"a=key-mgmt: mikey {B64}") == MIKEY  # 0*1SP
    assert parse_key_mgmt(f"a=key-mgmt:MIKEY {B64}") == MIKEY


@pytest.mark.parametrize(
    "body",
    [
        f"{HEAD}a=key-mgmt:mikey {B64}\r\nm=audio 49000 RTP/SAVP 0\r\n",  # session level
        f"{HEAD}m=audio 49000 RTP/SAVP 0\r\na=key-mgmt:mikey {B64}\r\n",  # media level
        f"{HEAD}a=key-mgmt:kerberos QUJD\r\nm=audio 4 RTP/SAVP 0\r\na=key-mgmt:mikey {B64}\r\n",
    ],
)
def test_whole_sdp(body: str) -> None:
    assert parse_key_mgmt(body) == MIKEY
    assert parse_key_mgmt(body.replace("\r\n", "\n")) == MIKEY


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (f"a=key-mgmt:kerberos {B64}", "not mikey"),
        ("a=rtpmap:0 PCMU/8000", "not an a=key-mgmt line"),
        ("a=key-mgmt:mikey ###", "not base64"),
        ("a=key-mgmt:mikey", "needs"),
        (f"{HEAD}m=audio 4 RTP/SAVP 0\r\n", "no a=key-mgmt:mikey"),
        (
            f"{HEAD}a=key-mgmt:mikey QUJD\r\nm=audio 4 RTP/SAVP 0\r\na=key-mgmt:mikey QUJD\r\n",
            "several",
        ),
    ],
)
def test_refusals_name_the_cause(text: str, cause: str) -> None:
    with pytest.raises(KeyMgmtDataError, match=cause) as info:
        parse_key_mgmt(text)
    assert B64 not in str(info.value)


def test_malformed_body_is_an_sdp_error() -> None:
    with pytest.raises(SdpError):
        parse_key_mgmt("v=0\r\nnot a line\r\n")
    with pytest.raises(SdpError):
        key_mgmt_line(b"")


@given(st.binary(min_size=1, max_size=2000))
def test_round_trip(message: bytes) -> None:
    assert parse_key_mgmt(key_mgmt_line(message)) == message
    assert parse_key_mgmt(f"{HEAD}m=audio 4 RTP/SAVP 0\r\n{key_mgmt_line(message)}\r\n") == message
