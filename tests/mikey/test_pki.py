"""Credentials, PSK store and certificate-chain validation tests (certificates from certs.py)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from mikey.crypto import sign, verify_signature
from mikey.errors import CertificateError, MikeyError
from mikey.pki import (
    Credentials,
    PskStore,
    StaticPskStore,
    TrustStore,
    load_certificates,
    parse_der_certificate,
)
from mikey.registry import ErrorNo

from . import certs
from .certs import NOW, Issued, ca, intermediate, leaf, other_ca, rsa_key

# --- PSK store ------------------------------------------------------------------------------------


def test_static_psk_store() -> None:
    store: PskStore = StaticPskStore({"sip:alice@example.com": b"alice-key"}, default=b"dflt")
    assert store.lookup("sip:alice@example.com") == b"alice-key"
    assert store.lookup("sip:bob@example.com") == b"dflt"
    assert store.lookup(None) == b"dflt"
    assert StaticPskStore({"a": b"k"}).lookup("b") is None
    assert StaticPskStore({"a": b"k"}).lookup(None) is None


def test_psk_store_copies_and_wipes() -> None:
    store = StaticPskStore({"a": b"secret-key"})
    got = store.lookup("a")
    assert isinstance(got, bytearray)
    got[:] = bytes(len(got))  # the caller wiping its copy leaves the store intact
    assert store.lookup("a") == bytearray(b"secret-key")
    assert "secret" not in repr(store)
    store.wipe()
    assert store.lookup("a") is None
    with pytest.raises(MikeyError):
        StaticPskStore({"a": b""})
    with pytest.raises(MikeyError):
        StaticPskStore({}, default=b"")


# --- credentials ----------------------------------------------------------------------------------


def test_credentials_from_pem_and_files(tmp_path: Path) -> None:
    alice = leaf("alice", issuer="intermediate")
    chain_pem = alice.cert_pem() + intermediate().cert_pem()
    creds = Credentials.from_pem(alice.key_pem(), chain_pem)
    assert creds.certificate == alice.cert
    assert creds.intermediates == (intermediate().cert,)
    assert creds.chain_der()[0] == alice.cert.public_bytes(serialization.Encoding.DER)
    assert "PRIVATE" not in repr(creds)
    (tmp_path / "key.pem").write_bytes(alice.key_pem())
    (tmp_path / "chain.pem").write_bytes(chain_pem)
    loaded = Credentials.load(tmp_path / "key.pem", tmp_path / "chain.pem")
    assert loaded.chain == creds.chain
    # the loaded key signs what the certificate's key verifies
    sig = sign(loaded.private_key, b"msg")
    verify_signature(loaded.certificate.public_key(), b"msg", sig)  # type: ignore[arg-type]


def test_encrypted_key_pem() -> None:
    alice = leaf("alice")
    pem = alice.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert Credentials.from_pem(pem, alice.cert_pem(), b"pw").certificate == alice.cert
    with pytest.raises(MikeyError):
        Credentials.from_pem(pem, alice.cert_pem(), b"wrong")


def test_credentials_misuse(tmp_path: Path) -> None:
    alice, bob = leaf("alice"), leaf("bob", san_uri=None)
    with pytest.raises(MikeyError, match="does not match"):
        Credentials(alice.key, (bob.cert,))
    with pytest.raises(MikeyError):
        Credentials(alice.key, ())
    with pytest.raises(MikeyError):
        Credentials.from_pem(b"not a key", alice.cert_pem())
    with pytest.raises(CertificateError):
        Credentials.from_pem(
            alice.key_pem(), b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
    with pytest.raises(MikeyError):
        Credentials.load(tmp_path / "missing.pem", tmp_path / "missing2.pem")


def test_certificate_parsing() -> None:
    der = ca().cert.public_bytes(serialization.Encoding.DER)
    assert parse_der_certificate(der) == ca().cert
    assert load_certificates(der) == [ca().cert]
    assert load_certificates(ca().cert_pem() + other_ca().cert_pem()) == [
        ca().cert,
        other_ca().cert,
    ]
    for garbage in (b"", b"\x30\x03\x02\x01", der[:-1], b"hello"):
        with pytest.raises(CertificateError):
            parse_der_certificate(garbage)


# --- chain validation -----------------------------------------------------------------------------


def trust() -> TrustStore:
    return TrustStore([ca().cert])


@pytest.mark.parametrize("usage", ["sign", "encrypt"])
def test_good_chains(usage: str) -> None:
    store = trust()
    for issued in (
        leaf("alice"),
        leaf("bob", san_uri=None),  # no SAN at all
        leaf("carol", key_usage=None),  # no KeyUsage: any use
        leaf("dave", eku_client_auth=True),
    ):
        assert store.verify_chain(issued.cert, [], NOW, usage) == issued.cert  # type: ignore[arg-type]
    ivan = leaf("ivan", issuer="intermediate")
    assert store.verify_chain(ivan.cert, [intermediate().cert], NOW, usage) == ivan.cert  # type: ignore[arg-type]


def test_key_usage_enforced() -> None:
    store = trust()
    signer = leaf("signer", key_usage="sign")
    encrypter = leaf("encrypter", key_usage="encrypt")
    useless = leaf("useless", key_usage="none")
    store.verify_chain(signer.cert, [], NOW, "sign")
    store.verify_chain(encrypter.cert, [], NOW, "encrypt")
    for issued, usage in (
        (signer, "encrypt"),
        (encrypter, "sign"),
        (useless, "sign"),
        (useless, "encrypt"),
    ):
        with pytest.raises(CertificateError) as info:
            store.verify_chain(issued.cert, [], NOW, usage)  # type: ignore[arg-type]
        assert info.value.error_no is ErrorNo.INVALID_CERT
        assert "KeyUsage" in str(info.value)


def test_validity_period() -> None:
    store = trust()
    with pytest.raises(CertificateError) as info:
        store.verify_chain(leaf("old", expired=True).cert, [], NOW, "sign")
    assert info.value.error_no is ErrorNo.INVALID_CERT
    alice = leaf("alice").cert
    for when in (
        certs.NOT_BEFORE - datetime.timedelta(days=1),
        certs.NOT_AFTER + datetime.timedelta(days=1),
    ):
        with pytest.raises(CertificateError):
            store.verify_chain(alice, [], when, "sign")


def test_untrusted_chains() -> None:
    store = trust()
    cases = [
        (leaf("mallory", issuer="self").cert, []),
        (leaf("oscar", issuer="other").cert, [other_ca().cert]),
        (leaf("ivan", issuer="intermediate").cert, []),  # intermediate missing
    ]
    for cert, inter in cases:
        with pytest.raises(CertificateError) as info:
            store.verify_chain(cert, inter, NOW, "sign")
        assert info.value.error_no is ErrorNo.INVALID_CERT
    # the other CA trusted -> accepted
    TrustStore([other_ca().cert]).verify_chain(cases[1][0], [], NOW, "sign")


def test_non_ca_cannot_issue() -> None:
    # a leaf certificate (CA=false) used as issuer must not be accepted
    parent = leaf("alice")
    key = rsa_key("child")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=child"))
        .issuer_name(parent.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(certs.NOT_BEFORE)
        .not_valid_after(certs.NOT_AFTER)
        .sign(parent.key, hashes.SHA256())
    )
    with pytest.raises(CertificateError):
        trust().verify_chain(cert, [parent.cert], NOW, "sign")


def test_tampered_certificate_rejected() -> None:
    der = bytearray(leaf("alice").cert.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    tampered = parse_der_certificate(der)
    with pytest.raises(CertificateError):
        trust().verify_chain(tampered, [], NOW, "sign")


def test_non_rsa_leaf_rejected() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    root = ca()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=ec"))
        .issuer_name(root.cert.subject)
        .public_key(ec_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(certs.NOT_BEFORE)
        .not_valid_after(certs.NOT_AFTER)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="RSA"):
        trust().verify_chain(cert, [], NOW, "sign")


def test_trust_store_construction(tmp_path: Path) -> None:
    with pytest.raises(MikeyError):
        TrustStore([])
    with pytest.raises(MikeyError):
        trust().verify_chain(leaf("alice").cert, [], NOW, "decrypt")  # type: ignore[arg-type]
    path = tmp_path / "cas.pem"
    path.write_bytes(ca().cert_pem() + other_ca().cert_pem())
    store = TrustStore.load(path)
    assert store.cas == (ca().cert, other_ca().cert)
    store.verify_chain(leaf("oscar", issuer="other").cert, [], NOW, "encrypt")
    assert TrustStore.from_pem(ca().cert_pem()).cas == (ca().cert,)
    with pytest.raises(MikeyError):
        TrustStore.load(tmp_path / "nope.pem")


def test_issued_helper_is_cached() -> None:
    assert leaf("alice") is leaf("alice")
    assert isinstance(leaf("alice"), Issued)


def test_bare_leaf_without_aki_san_or_key_usage_accepted() -> None:
    # like certificates made by older MIKEY test PKIs: no AKI, no SAN, no KeyUsage
    root = ca()
    key = rsa_key("bare")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=bare"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(certs.NOT_BEFORE)
        .not_valid_after(certs.NOT_AFTER)
        .sign(root.key, hashes.SHA256())
    )
    assert trust().verify_chain(cert, [], NOW, "sign") == cert
    assert trust().verify_chain(cert, [], NOW, "encrypt") == cert
