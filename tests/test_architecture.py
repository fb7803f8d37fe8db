"""The tree's shape, read from the code's own imports (ast, nothing is run).

- ``mikey`` (the sans-IO core) imports no asyncio, socket, secrets, time, and never calls
  ``os.urandom``: time and randomness are passed in.
- Dependencies point one way: ``mikey`` imports none of ours; ``srtp`` only ``mikey``; ``sdp``
  none of ours; neither glue package imports the other; the shell ``mikey_cli`` no glue package.
- No import cycle between the modules of our packages (``TYPE_CHECKING`` imports included).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mikey", "mikey_cli", "srtp", "sdp", "sipglue", "rtspglue")
ALLOWED = {
    "mikey": set(),
    "sdp": set(),
    "srtp": {"mikey"},
    "sipglue": {"mikey", "mikey_cli", "srtp", "sdp"},
    "rtspglue": {"mikey", "mikey_cli", "srtp", "sdp"},
    "mikey_cli": {"mikey", "srtp"},
}
CORE_FORBIDDEN = {"asyncio", "socket", "secrets", "time", "selectors", "threading"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path) -> Iterator[tuple[str, ast.AST]]:
    """Absolute names of every import in the module (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix, node
            for alias in node.names:  # ``from pkg import module``
                yield f"{prefix}.{alias.name}", node


def test_the_core_does_no_io() -> None:
    for name, path in _modules().items():
        if name.split(".")[0] != "mikey":
            continue
        source = path.read_text(encoding="utf-8")
        assert "urandom" not in source, f"{name} draws OS randomness"
        for imported, _ in _imports(name, path):
            top = imported.split(".")[0]
            assert top not in CORE_FORBIDDEN, f"{name} imports {imported}"


def test_dependencies_point_one_way() -> None:
    for name, path in _modules().items():
        own = name.split(".")[0]
        for imported, _ in _imports(name, path):
            top = imported.split(".")[0]
            if top in PACKAGES and top != own:
                assert top in ALLOWED[own], f"{name} imports {imported}"


def test_no_import_cycles() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, _ in _imports(name, path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # a package's __init__ re-exporting its modules is not a dependency of them
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its nodes, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The same readings find a planted cycle, relative imports and an I/O import."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import time\nfrom . import codec\nfrom ..srtp import gsa\n", encoding="utf-8"
    )
    found = {n for n, _ in _imports("mikey.exchange.planted", planted)}
    assert {"time", "mikey.exchange.codec", "mikey.srtp.gsa"} <= found
