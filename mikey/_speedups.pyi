from collections.abc import Sequence

from typing_extensions import Buffer

SHA1: int
SHA256: int

def prf(
    digest: int, inkey: Buffer, label: Buffer, length: int, minisip_compat: bool, /
) -> bytearray: ...
def prf_many(
    digest: int,
    inkey: Buffer,
    tail: Buffer,
    wanted: Sequence[tuple[int, int]],
    minisip_compat: bool,
    /,
) -> list[bytearray]: ...
def hmac(digest: int, key: Buffer, data: Buffer, /) -> bytes: ...
def aes_ctr(key: Buffer, iv: Buffer, data: Buffer, /) -> bytearray: ...
def modexp(base: Buffer, exponent: Buffer, modulus: Buffer, /) -> bytearray: ...
def jacobi(a: Buffer, n: Buffer, /) -> int: ...
