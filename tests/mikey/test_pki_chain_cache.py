"""TrustStore's validation cache: reuse only inside every validity period and the TTL; never
remember a failure; usage and intermediates are part of the key (certificates from certs.py)."""

from __future__ import annotations

import datetime

import pytest

from mikey.errors import CertificateError, MikeyError
from mikey.pki import TrustStore

from . import certs
from .certs import NOW, ca, intermediate, leaf

DAY = datetime.timedelta(days=1)


def store(**kw: float) -> TrustStore:
    return TrustStore([ca().cert], **kw)  # type: ignore[arg-type]


def test_success_is_reused() -> None:
    s = store()
    alice = leaf("alice").cert
    s.verify_chain(alice, [], NOW, "sign")
    s.verify_chain(alice, [], NOW + datetime.timedelta(seconds=10), "sign")
    info = s.cache_info()
    assert (info.hits, info.misses, info.size) == (1, 1, 1)


def test_naive_now_is_utc() -> None:
    s = store()
    alice = leaf("alice").cert
    s.verify_chain(alice, [], NOW.replace(tzinfo=None), "sign")
    s.verify_chain(alice, [], NOW, "sign")
    assert s.cache_info().hits == 1


def test_cached_chain_refused_outside_its_validity() -> None:
    s = store(cache_ttl=10 * 365 * 86400)  # a TTL longer than the certificate's life
    alice = leaf("alice").cert
    s.verify_chain(alice, [], NOW, "sign")
    for when in (certs.NOT_BEFORE - DAY, certs.NOT_AFTER + DAY):
        with pytest.raises(CertificateError):
            s.verify_chain(alice, [], when, "sign")
    assert s.cache_info().hits == 0


def test_ttl_bounds_reuse() -> None:
    s = store(cache_ttl=60)
    alice = leaf("alice").cert
    s.verify_chain(alice, [], NOW, "sign")
    s.verify_chain(alice, [], NOW + datetime.timedelta(seconds=59), "sign")
    s.verify_chain(alice, [], NOW + datetime.timedelta(seconds=61), "sign")  # validated again
    info = s.cache_info()
    assert (info.hits, info.misses) == (1, 2)


def test_failures_are_never_cached() -> None:
    s = store()
    mallory = leaf("mallory", issuer="self").cert
    for _ in range(3):
        with pytest.raises(CertificateError):
            s.verify_chain(mallory, [], NOW, "sign")
    assert s.cache_info().size == 0
    assert s.cache_info().misses == 3


def test_usage_is_part_of_the_key() -> None:
    s = store()
    signer = leaf("signer", key_usage="sign").cert
    s.verify_chain(signer, [], NOW, "sign")
    with pytest.raises(CertificateError, match="keyEncipherment"):
        s.verify_chain(signer, [], NOW, "encrypt")


def test_intermediates_are_part_of_the_key() -> None:
    s = store()
    ivan = leaf("ivan", issuer="intermediate").cert
    s.verify_chain(ivan, [intermediate().cert], NOW, "sign")
    with pytest.raises(CertificateError):
        s.verify_chain(ivan, [], NOW, "sign")  # intermediate missing: not the cached chain


def test_bounded_lru_and_disabled_cache() -> None:
    s = store(cache_size=2)
    names = ("alice", "bob", "carol")
    for name in names:
        s.verify_chain(leaf(name).cert, [], NOW, "sign")
    assert s.cache_info().size == 2
    s.verify_chain(leaf("alice").cert, [], NOW, "sign")  # evicted first: validated again
    assert s.cache_info().hits == 0
    off = store(cache_size=0)
    off.verify_chain(leaf("alice").cert, [], NOW, "sign")
    off.verify_chain(leaf("alice").cert, [], NOW, "sign")
    assert off.cache_info() == type(off.cache_info())(0, 0, 0)
    with pytest.raises(MikeyError):
        store(cache_size=-1)
