"""A faster ``__init__`` for the frozen, slotted dataclasses on the keying hot path.

A frozen dataclass sets each field with ``object.__setattr__(self, name, value)``, which looks
the name up through the class's MRO on every call: about 0.2 us per field, so a MIKEY round
trip spent ~10 us (of ~150) just filling ~30 payload, SA and key objects. :func:`fast_init`
replaces the generated ``__init__`` with one that calls each slot's member descriptor directly
(the same store, minus the lookup); where the C accelerator runs, one call stores all fields
through the same descriptors (``fill_slots``). Everything else stays the dataclass's: fields,
defaults, ``__post_init__``, ``repr``/``eq``/``hash``, and instances stay frozen (assignment
still raises ``FrozenInstanceError``). Only plain fields are supported; anything else is a
``TypeError`` at import time, so a class cannot silently lose behaviour.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, TypeVar

from . import _accel

__all__ = ["fast_init"]

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Class decorator (outside ``@dataclass(frozen=True, slots=True)``): a faster ``__init__``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: fast_init needs a frozen, slotted dataclass")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    original = inspect.signature(cls.__init__)
    names: list[str] = []
    defaults: dict[str, Any] = {}
    setters: dict[str, Any] = {}
    slots: list[types.MemberDescriptorType] = []
    for f in fields:
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init supports plain fields only")
        slot = cls.__dict__.get(f.name)
        if not isinstance(slot, types.MemberDescriptorType):
            raise TypeError(f"{cls.__name__}.{f.name} is not a slot")
        names.append(f.name)
        slots.append(slot)
        setters[f"_set_{f.name}"] = slot.__set__
        if f.default is not dataclasses.MISSING:
            defaults[f"_default_{f.name}"] = f.default
    args = ", ".join(f"{n}=_default_{n}" if f"_default_{n}" in defaults else n for n in names)
    body = [f"        _set_{n}(self, {n})" for n in names]
    c = _accel.speedups
    if c is not None and names:  # one C call through the same descriptors
        setters = {"_fill": c.fill_slots, "_slots": tuple(slots)}
        body = [f"        _fill(self, _slots, {', '.join(names)})"]
    if hasattr(cls, "__post_init__"):
        body.append("        self.__post_init__()")
    free = ", ".join([*setters, *defaults]) or "_unused=None"
    source = (
        f"def _make({free}):\n"
        f"    def __init__(self, {args}):\n"
        + "\n".join(body or ["        pass"])
        + "\n    return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)  # noqa: S102 (generated from field names, like dataclasses)
    init = namespace["_make"](**setters, **defaults)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    if [(p.name, p.default, p.kind) for p in inspect.signature(init).parameters.values()] != [
        (p.name, p.default, p.kind) for p in original.parameters.values()
    ]:
        raise TypeError(f"{cls.__name__}: fast_init would change the signature")
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning a method)
    return cls
