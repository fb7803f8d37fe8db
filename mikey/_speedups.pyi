from collections.abc import Sequence
from typing import Any

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
def cleanse(*buffers: Buffer | None) -> None: ...
def fill_slots(obj: object, descriptors: tuple[object, ...], /, *values: object) -> None: ...
def parse_setup(
    classes: tuple[tuple[type, tuple[object, ...]], ...],
    enums: tuple[dict[int, Any], ...],
    lengths: tuple[dict[int, int], ...],
    sp_cache: dict[Any, Any],
    sp_encoded: dict[Any, Any],
    ntp_2000: bytes,
    max_payloads: int,
    max_message: int,
    /,
) -> None: ...
def parse_message(data: bytes, /) -> Any: ...
def encode_message(message: object, /) -> bytes | None: ...
