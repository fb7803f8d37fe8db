"""Every srtp test must leave no libsrtp context behind (the GSA audit reaches zero)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from srtp import _libsrtp
from srtp.gsa import GsaRegistry


@pytest.fixture(autouse=True)
def _no_live_srtp_contexts() -> Iterator[None]:
    if _libsrtp.live_sessions():  # an earlier test leaked and was already reported
        gc.collect()
    yield
    leaked = _libsrtp.live_sessions()
    assert leaked == 0, f"the test left {leaked} libsrtp contexts allocated"


@pytest.fixture
def registry() -> Iterator[GsaRegistry]:
    reg = GsaRegistry()
    yield reg
    report = reg.audit()
    assert report.clean, report
