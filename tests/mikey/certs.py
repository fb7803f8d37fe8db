"""Test PKI built with ``cryptography`` at test time: a CA, an intermediate, leaves, bad certs.

RSA keys are generated once per test session (``functools.cache``). Every certificate is valid
from :data:`NOT_BEFORE` to :data:`NOT_AFTER`; verify at :data:`NOW`.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.UTC
NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime.datetime(2035, 1, 1, tzinfo=UTC)
NOW = datetime.datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, one per name per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(
    *, digital_signature: bool = False, key_encipherment: bool = False, cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: str,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer_key: rsa.RSAPrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def _ca(cn: str, key_name: str, issuer: Issued | None, path_length: int | None) -> Issued:
    key = rsa_key(key_name)
    issuer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else _name(cn)
    cert = (
        _builder(cn, issuer_name, key, issuer_key, NOT_BEFORE, NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return Issued(key, cert)


@functools.cache
def ca() -> Issued:
    """The trusted root CA."""
    return _ca("MIKEY Test Root CA", "root", None, None)


@functools.cache
def intermediate() -> Issued:
    """An intermediate CA under :func:`ca`."""
    return _ca("MIKEY Test Intermediate CA", "intermediate", ca(), 0)


@functools.cache
def other_ca() -> Issued:
    """A CA that nobody trusts."""
    return _ca("Untrusted CA", "other-root", None, None)


@functools.cache
def leaf(
    name: str = "alice",
    *,
    san_uri: str | None = "sip:alice@example.com",
    key_usage: str | None = "both",
    issuer: str = "root",
    expired: bool = False,
    eku_client_auth: bool = False,
    san_dns: str | None = None,
) -> Issued:
    """An end-entity certificate.

    ``key_usage``: None (no extension), "sign" (digitalSignature), "encrypt" (keyEncipherment),
    "both", or "none" (extension present with neither bit, only dataEncipherment... i.e. useless).
    ``issuer``: "root", "intermediate", "other" (untrusted CA) or "self" (self-signed).
    """
    key = rsa_key(name)
    if issuer == "self":
        issuer_key, issuer_name = key, _name(name)
    else:
        parent = {"root": ca, "intermediate": intermediate, "other": other_ca}[issuer]()
        issuer_key, issuer_name = parent.key, parent.cert.subject
    if expired:
        not_before = datetime.datetime(2020, 1, 1, tzinfo=UTC)
        not_after = datetime.datetime(2021, 1, 1, tzinfo=UTC)
    else:
        not_before, not_after = NOT_BEFORE, NOT_AFTER
    builder = _builder(name, issuer_name, key, issuer_key, not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    names: list[x509.GeneralName] = []
    if san_uri is not None:
        names.append(x509.UniformResourceIdentifier(san_uri))
    if san_dns is not None:
        names.append(x509.DNSName(san_dns))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if key_usage is not None:
        usage = {
            "sign": _key_usage(digital_signature=True),
            "encrypt": _key_usage(key_encipherment=True),
            "both": _key_usage(digital_signature=True, key_encipherment=True),
            "none": x509.KeyUsage(
                digital_signature=False,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
        }[key_usage]
        builder = builder.add_extension(usage, critical=True)
    if eku_client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return Issued(key, builder.sign(issuer_key, hashes.SHA256()))


@functools.cache
def self_signed(name: str, san_uri: str | None, *, expired: bool = False) -> Issued:
    """A self-signed endpoint certificate the way ``openssl req -x509`` makes one: it asserts
    basicConstraints cA (so no chain validation accepts it as an end entity) and is meant to be
    pinned by the peer."""
    key = rsa_key(name)
    if expired:
        not_before = datetime.datetime(2020, 1, 1, tzinfo=UTC)
        not_after = datetime.datetime(2021, 1, 1, tzinfo=UTC)
    else:
        not_before, not_after = NOT_BEFORE, NOT_AFTER
    builder = _builder(name, _name(name), key, key, not_before, not_after).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    )
    if san_uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san_uri)]), critical=False
        )
    return Issued(key, builder.sign(key, hashes.SHA256()))
