"""``mikey._frozen.fast_init`` keeps every dataclass behaviour it does not speed up.

Each behaviour is checked on a class decorated through the C accelerator (one ``fill_slots``
call) and through the pure-Python setters, against the same dataclass without fast_init.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from mikey import codec, exchange, keying, prf
from mikey._frozen import fast_init

from .conftest import _BUILT, require_accelerator


def _make_point() -> type:
    @fast_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class _Point:
        x: int
        y: int = 7
        checked: bool = dataclasses.field(default=False, compare=False)

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative x")

    return _Point


@pytest.fixture
def point(implementation: str) -> type:
    """The test class, decorated while ``implementation`` is in force."""
    return _make_point()


@dataclasses.dataclass(frozen=True, slots=True)
class _Reference:  # the same class without fast_init
    x: int
    y: int = 7
    checked: bool = dataclasses.field(default=False, compare=False)


def test_same_signature_defaults_and_keywords(point: type) -> None:
    _Point = point
    assert str(inspect.signature(_Point)) == str(inspect.signature(_Reference))
    assert _Point(1) == _Point(1, 7) == _Point(x=1, y=7)
    assert _Point(1, y=2).y == 2
    expected = repr(_Reference(3, 4, True)).replace("_Reference", _Point.__qualname__)
    assert repr(_Point(3, 4, True)) == expected
    assert hash(_Point(1, 2)) == hash(_Point(1, 2, True))  # compare=False field left out
    with pytest.raises(TypeError):
        _Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Point(1, 2, True, 4)  # type: ignore[call-arg]


def test_still_frozen_and_post_init_runs(point: type) -> None:
    _Point = point
    p = _Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="negative"):
        _Point(-1)
    assert dataclasses.replace(p, y=9) == _Point(1, 9)


def test_fill_slots_refuses_misuse() -> None:
    require_accelerator()
    fill = _BUILT.fill_slots  # type: ignore[union-attr]
    obj = object.__new__(_Reference)
    x, y = _Reference.__dict__["x"], _Reference.__dict__["y"]
    with pytest.raises(TypeError):
        fill(obj, (x, y), 1)  # a value short
    with pytest.raises(TypeError):
        fill(obj, [x], 1)  # not a tuple
    with pytest.raises(TypeError):
        fill(obj, (len,), 1)  # not a data descriptor
    with pytest.raises(TypeError):
        fill(object(), (x,), 1)  # a descriptor of another class
    fill(obj, (x, y), 5, 6)
    assert (obj.x, obj.y) == (5, 6)


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class NoInit:
        x: int = dataclasses.field(default=0, init=False)

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class KwOnly:
        x: int

    for cls in (NoSlots, NotFrozen, Factory, NoInit, KwOnly):
        with pytest.raises(TypeError):
            fast_init(cls)


@pytest.mark.parametrize(
    "cls",
    [
        codec.Header,
        codec.KeyData,
        codec.Kemac,
        codec.Timestamp,
        codec.Message,
        keying.DataSaEntry,
        keying.RegistrationSa,
        prf.TransportKeys,
        exchange.StreamSpec,
    ],
)
def test_library_classes_keep_their_dataclass_signature(cls: type) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected
