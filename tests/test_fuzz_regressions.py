"""Every fuzz harness over its seed corpus and every input that ever crashed it (fast).

The seeds are valid messages made by the real code (tests/fuzz/make_corpus.py), so they must
pass cleanly; a seed I_MESSAGE must also complete its exchange (the stored keys still match).
A crasher that is not fixed yet is listed in KNOWN with the reason and runs as a strict xfail:
when the owner fixes the bug the test XPASSes and the entry must be removed.
"""

from __future__ import annotations

import pytest

from mikey.exchange import ExchangeCompleted
from tests.fuzz.__main__ import bounded
from tests.fuzz.harnesses import CRASHERS, HARNESSES, RESPONDER_MODES, respond, seeds

KNOWN: dict[str, str] = {}

CASES = [(name, path, data) for name in HARNESSES for path, data in seeds(name)]


def _marks(name: str, filename: str) -> list[pytest.MarkDecorator]:
    reason = KNOWN.get(f"{name}/{filename}")
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(
    ("name", "filename", "data"),
    [
        pytest.param(
            name,
            path.name,
            data,
            id=f"{name}/{path.parent.name}/{path.name[:24]}",
            marks=_marks(name, path.name),
        )
        for name, path, data in CASES
    ],
)
def test_harness_input(name: str, filename: str, data: bytes) -> None:
    bounded(HARNESSES[name].check, data, 5.0)


def test_every_harness_has_seeds() -> None:
    for name in HARNESSES:
        corpus = [p for p, _ in seeds(name) if CRASHERS not in p.parents]
        assert corpus, f"no seed corpus for {name}"


@pytest.mark.parametrize("name", list(RESPONDER_MODES))
def test_responder_seeds_complete(name: str) -> None:
    corpus = [d for p, d in seeds(name) if CRASHERS not in p.parents]
    for data in corpus:
        assert isinstance(respond(RESPONDER_MODES[name], data), ExchangeCompleted)


def test_known_crashers_exist() -> None:
    for key in KNOWN:
        name, filename = key.split("/", 1)
        assert (CRASHERS / name / filename).is_file(), key
