"""Fixtures shared by the mikey tests."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from mikey import _accel


def _built() -> ModuleType | None:
    """The accelerator module if it was built (whatever MIKEY_PURE_PYTHON says)."""
    try:
        return importlib.import_module("mikey._speedups")
    except ImportError:
        return None


_BUILT = _built()


def require_accelerator() -> None:
    """Fail as root (CI builds it), skip elsewhere, when the C accelerator was not built."""
    if _BUILT is not None:
        return
    reason = "the C accelerator mikey._speedups was not built (no compiler or OpenSSL headers)"
    if os.geteuid() == 0:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(params=["accelerated", "python"])
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run a test once through the C accelerator and once through the pure-Python reference."""
    if request.param == "accelerated":
        require_accelerator()
        monkeypatch.setattr(_accel, "speedups", _BUILT)
    else:
        monkeypatch.setattr(_accel, "speedups", None)
    yield request.param
