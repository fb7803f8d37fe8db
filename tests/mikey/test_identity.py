"""Identity comparison (RFC 3261 §19.1.4 examples as the oracle) and certificate binding."""

from __future__ import annotations

import pytest

from mikey.errors import CertificateError, IdentityError
from mikey.identity import (
    bind_certificate,
    certificate_fingerprint,
    certificate_identities,
    parse_fingerprint,
    same_identity,
    single_identity,
)
from mikey.pki import TrustStore

from . import certs

# RFC 3261 §19.1.4: "The URIs within each of the following sets are equivalent"
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]
# "The URIs within each of the following sets are not equivalent"
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    # and beyond the RFC's list: sip and sips never match, nor parameters both carry differently
    ("sip:alice@example.com", "sips:alice@example.com"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("alice@example.com", "Alice@example.com"),  # NAI: exact
    ("tel:+15551234", "tel:+1-555-1234"),  # other schemes: exact
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    assert same_identity(a, b) and same_identity(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_rfc3261_different_uris(a: str, b: str) -> None:
    assert not same_identity(a, b) and not same_identity(b, a)


def test_certificate_identities_and_mapping() -> None:
    alice = certs.leaf("alice", san_uri="sip:alice@example.com").cert
    assert certificate_identities(alice) == ("sip:alice@example.com",)
    assert single_identity(alice) == "sip:alice@example.com"
    tls_server = certs.leaf("eve", san_uri=None, san_dns="www.example.com").cert
    with pytest.raises(CertificateError, match="no SAN URI"):
        certificate_identities(tls_server)
    assert single_identity(tls_server) is None
    table = ((certificate_fingerprint(tls_server), "sip:eve@example.com"),)
    assert certificate_identities(tls_server, table) == ("sip:eve@example.com",)
    # a mapping replaces what a certificate carries
    table = ((certificate_fingerprint(alice), "sip:boss@example.com"),)
    assert certificate_identities(alice, table) == ("sip:boss@example.com",)


def test_bind_certificate() -> None:
    alice = certs.leaf("alice", san_uri="sip:alice@example.com").cert
    assert bind_certificate(alice, None, None) == "sip:alice@example.com"
    assert bind_certificate(alice, "sip:alice@EXAMPLE.com", None) == "sip:alice@EXAMPLE.com"
    assert bind_certificate(alice, None, "sip:alice@example.com") == "sip:alice@example.com"
    with pytest.raises(IdentityError, match=r"IDi sip:bob@example\.com does not match"):
        bind_certificate(alice, "sip:bob@example.com", None, field="IDi")
    with pytest.raises(IdentityError, match=r"not the expected sip:bob@example\.com"):
        bind_certificate(alice, None, "sip:bob@example.com")
    with pytest.raises(IdentityError, match="not the expected"):
        bind_certificate(alice, "sip:alice@example.com", "sip:bob@example.com")


def test_parse_fingerprint() -> None:
    cert = certs.leaf("alice").cert
    fp = certificate_fingerprint(cert)
    colons = ":".join(f"{b:02X}" for b in fp)
    assert parse_fingerprint(colons) == fp
    assert parse_fingerprint("sha256=" + fp.hex()) == fp
    with pytest.raises(IdentityError, match="32"):
        parse_fingerprint("ab:cd")
    with pytest.raises(IdentityError, match="not hex"):
        parse_fingerprint("zz")


def test_pinned_certificate_needs_no_chain() -> None:
    own = certs.self_signed("alice", "sip:alice@example.com")
    now = certs.NOW
    assert TrustStore([own.cert]).verify_chain(own.cert, [], now, "sign") is own.cert
    # not pinned: the path validator refuses a cA end entity and says why
    other = certs.self_signed("bob", "sip:bob@example.com")
    with pytest.raises(CertificateError, match=r"rejected: .*basicConstraints"):
        TrustStore([other.cert]).verify_chain(own.cert, [], now, "sign")
    expired = certs.self_signed("alice-old", "sip:alice@example.com", expired=True)
    with pytest.raises(CertificateError, match="pinned certificate expired"):
        TrustStore([expired.cert]).verify_chain(expired.cert, [], now, "sign")
    # KeyUsage still applies to a pinned leaf
    sign_only = certs.leaf("carol", issuer="self", key_usage="sign")
    store = TrustStore([sign_only.cert])
    assert store.verify_chain(sign_only.cert, [], now, "sign") is sign_only.cert
    with pytest.raises(CertificateError, match="keyEncipherment"):
        store.verify_chain(sign_only.cert, [], now, "encrypt")
