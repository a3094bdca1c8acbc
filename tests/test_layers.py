"""The import arrows of design.md, checked on the source: imports only go down the bands.

=====  ==============  ===========================================================================
band   name            components
=====  ==============  ===========================================================================
0      base            errors, _version, data, hosts, moved
1      pure core       protocol/, audio/format, audio/buffers, audio/base, analysis/, speech/segmenter
2      edges           transport, connection, auth, audio/ (files, devices, browser), recording, speech/ (native
                       VAD, TTS, ASR), emulator/ (server side)
3      orchestration   session, engine, notebook_session, tools/, rollover, testing
4      lab             lab/
5      presentation    widgets/, plots/, notebook
6      apps            cli, __main__
=====  ==============  ===========================================================================

What is checked, on every ``import`` in the package (module level, inside functions and under
``if TYPE_CHECKING:`` alike — an import that only type checkers run still couples two modules):

* **bands**: an import goes to a lower band, or inside one component, or along an arrow of
  :data:`SAME_BAND_ARROWS` (a same-band arrow is a decision, never a default);
* **cycles**: the module graph has no strongly connected component of more than one module;
* **string imports**: no ``importlib.import_module``, ``__import__`` or ``sys.modules`` outside
  an ``__init__.py`` (an import the checker cannot see is an arrow nobody reviews);
* **privates**: no ``from x import _name`` across modules (share a helper by making it public);
* **pure core**: bands 0 and 1 import only :data:`PURE_STDLIB` and :data:`PURE_THIRD_PARTY`
  (type-only imports excepted: they never run), so no clock, socket, thread or environment;
* **emulator**: it imports only :data:`EMULATOR_MAY_IMPORT` from the package, never the
  client's state machine, session, transport or devices, so a client bug cannot be hidden
  by code both sides share;
* **speech**: ``speech/`` (the native VAD, TTS and ASR the emulator and the lab both use) imports
  only :data:`SPEECH_MAY_IMPORT`: never the emulator, the client's session or transport, the lab
  or widgets, so the lab's truth does not need the emulator and the emulator not the lab.
* **moved**: nothing in the package imports the re-exports left where ``speech/`` modules used
  to be (:data:`MOVED_TO_SPEECH`); the lab and the emulator import ``speech/`` itself.

The checker is tested too (:func:`test_checker_reports`): small packages written into
``tmp_path`` with one violation each must be reported. ``python tests/test_layers.py``
writes ``docs/import-graph.md`` (the component arrows as a mermaid graph).
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "voicelive_nb"
GRAPH_DOC = ROOT / "docs" / "import-graph.md"

BAND_NAMES = ("base", "pure core", "edges", "orchestration", "lab", "presentation", "apps")

#: Component prefix -> band; a module belongs to the longest prefix that names it.
COMPONENTS: dict[str, int] = {
    "errors": 0,
    "_version": 0,
    "data": 0,
    "hosts": 0,
    "moved": 0,
    "protocol": 1,
    "audio.format": 1,
    "audio.buffers": 1,
    "audio.base": 1,
    "analysis": 1,
    "speech.segmenter": 1,
    "transport": 2,
    "connection": 2,
    "auth": 2,
    "audio": 2,
    "recording": 2,
    "speech": 2,
    "emulator": 2,
    "session": 3,
    "session_audio": 3,  # Session's collaborators (session_<part>): the session owns and uses them
    "session_connect": 3,
    "session_events": 3,
    "session_reader": 3,
    "session_link": 3,
    "session_send": 3,
    "session_setup": 3,
    "session_tasks": 3,
    "engine": 3,
    "notebook_session": 3,
    "notebook_audio": 3,  # NotebookSession's collaborators: the same band, arrows below
    "notebook_archive": 3,
    "notebook_rollover": 3,
    "notebook_run": 3,
    "notebook_calls": 3,
    "notebook_kit": 3,
    "tools": 3,
    "rollover": 3,
    "testing": 3,
    "lab": 4,
    "widgets": 5,
    "plots": 5,
    "notebook": 5,
    "cli": 6,
    "__main__": 6,
}
FACADE = ""  # voicelive_nb/__init__.py re-exports lazily; it may name anything

#: The only imports allowed between two different components of one band.
SAME_BAND_ARROWS: frozenset[tuple[str, str]] = frozenset(
    {
        ("protocol", "errors"),
        ("analysis", "protocol"),  # the timeline is a view over the one event interpreter
        ("transport", "auth"),
        ("connection", "auth"),  # the options resolve settings and hold the key as a Secret
        ("connection", "transport"),  # the transport factory's type, and URL checking/redaction
        ("emulator", "audio"),
        ("emulator", "speech"),
        ("recording", "auth"),
        ("recording", "audio"),
        ("session", "transport"),
        ("session", "tools"),
        ("session", "session_audio"),
        ("session", "session_connect"),
        ("session", "session_events"),
        ("session", "session_reader"),
        ("session", "session_setup"),
        ("session_connect", "session_audio"),
        ("session_connect", "session_events"),
        ("session_connect", "transport"),
        ("session_reader", "session_audio"),
        ("session_reader", "session_events"),
        ("session_reader", "transport"),
        ("session_reader", "tools"),
        ("session_setup", "session_audio"),
        ("session_setup", "session_events"),
        ("session_setup", "tools"),
        ("session", "session_send"),
        ("session", "session_link"),
        ("session_link", "connection"),
        ("session_link", "session_audio"),
        ("session_link", "session_connect"),
        ("session_link", "session_reader"),
        ("session_link", "session_send"),
        ("session_link", "session_tasks"),
        ("session_link", "transport"),
        ("session_link", "recording"),
        ("session_send", "session_audio"),
        ("session_send", "transport"),
        ("session", "session_tasks"),
        ("session_tasks", "session_events"),
        ("session_tasks", "transport"),
        ("notebook_session", "session"),
        ("notebook_session", "engine"),
        ("notebook_session", "tools"),
        ("notebook_session", "rollover"),
        ("notebook_session", "notebook_audio"),
        ("notebook_audio", "engine"),
        ("notebook_audio", "session"),
        ("notebook_session", "notebook_archive"),
        ("notebook_archive", "rollover"),
        ("notebook_archive", "session"),
        ("notebook_rollover", "rollover"),
        ("notebook_rollover", "session"),
        ("notebook_rollover", "notebook_archive"),
        ("notebook_rollover", "notebook_audio"),
        ("notebook_session", "notebook_run"),
        ("notebook_run", "notebook_archive"),
        ("notebook_run", "notebook_audio"),
        ("notebook_run", "notebook_rollover"),
        ("notebook_run", "rollover"),
        ("notebook_run", "session"),
        ("notebook_session", "notebook_calls"),
        ("notebook_session", "notebook_kit"),
        ("notebook_calls", "engine"),
        ("notebook_calls", "notebook_audio"),
        ("notebook_calls", "notebook_rollover"),
        ("notebook_calls", "session"),
        ("notebook_kit", "notebook_rollover"),
        ("notebook_kit", "session"),
        ("notebook_kit", "tools"),
        ("notebook", "widgets"),
        ("notebook", "plots"),
        ("plots", "widgets"),
        ("__main__", "cli"),
    }
)

#: Standard-library modules the pure core may import: data, maths, text — no I/O, clocks, threads.
PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "array",
        "base64",
        "binascii",
        "bisect",
        "collections",
        "copy",
        "dataclasses",
        "enum",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "re",
        "statistics",
        "string",
        "struct",
        "textwrap",
        "traceback",
        "types",
        "typing",
        "warnings",
    }
)
#: Third-party libraries of pure computation the pure core may import.
PURE_THIRD_PARTY = frozenset({"numpy", "soxr"})
#: Further external imports allowed to one pure module, with the reason.
PURE_EXCEPTIONS: dict[str, frozenset[str]] = {
    "data": frozenset({"pathlib"}),  # it names the bundled files; it never opens them
    "hosts": frozenset({"ipaddress"}),  # parses an address; it never resolves a name
}

#: What the emulator (``emulator*``) may import from the package: pure definitions and its own modules.
EMULATOR_MAY_IMPORT = (
    "emulator",
    "errors",
    "_version",
    "data",
    "hosts",
    "moved",
    "audio.format",
    "audio.buffers",
    "audio.wav",
    "protocol.events",
    "protocol.codec",
    "protocol.wire",
    "protocol.vocabulary",
    "speech",
)

#: The emulator's sans-I/O core (``ServerProtocol`` and its parts): pure like bands 0-1 although the
#: emulator sits in band 2, so it imports only PURE_STDLIB / PURE_THIRD_PARTY and, from the package,
#: only these modules and bands 0-1 (no asyncio, clock, thread, socket, or the speech engines).
EMULATOR_CORE = frozenset(
    {
        "emulator.core",
        "emulator.input_audio",
        "emulator.items",
        "emulator.limits",
        "emulator.options",
        "emulator.protocol",
        "emulator.responder",
        "emulator.responses",
        "emulator.session_defaults",
        "emulator.tool_turns",
        "emulator.toolcalls",
        "emulator.transcripts",
        "emulator.wire_shapes",
    }
)
#: Further external imports allowed to one module of the emulator core, with the reason.
EMULATOR_CORE_EXCEPTIONS: dict[str, frozenset[str]] = {
    "emulator.session_defaults": frozenset({"ipaddress"}),  # parses the host name it is given
}

#: What ``speech/`` may import from the package: errors and pure audio helpers, and itself.
SPEECH_MAY_IMPORT = ("speech", "errors", "_version", "data", "audio.format", "audio.buffers")
#: Old homes of ``speech/`` modules, kept as re-exports for users' imports; the package never uses them.
MOVED_TO_SPEECH = frozenset(
    {"emulator.behavior", "emulator.vad", "emulator.tts", "emulator.asr", "emulator.streaming_asr"}
)


@dataclass(frozen=True)
class Import:
    """One import statement's arrow: ``source`` module imports ``target`` (names relative to the package)."""

    source: str
    target: str  # internal: module name without the package prefix; external: the absolute name
    internal: bool
    names: tuple[str, ...]  # ``from target import names`` (empty for ``import target``)
    line: int
    type_only: bool
    path: Path

    def where(self, package: str) -> str:
        return f"{shown(self.path)}:{self.line}: {full(package, self.source)}"


def shown(path: Path) -> str:
    """``voicelive_nb/lab/sweep.py``: the path from the package directory on."""
    parts = path.parts
    start = len(parts) - 1 - parts[::-1].index("voicelive_nb") if "voicelive_nb" in parts else 0
    return Path(*parts[start:]).as_posix()


def full(package: str, module: str) -> str:
    return f"{package}.{module}" if module else package


# --------------------------------------------------------------------------- scanning


def modules_of(root: Path) -> dict[str, Path]:
    """Module name (relative to the package, ``""`` for its ``__init__``) -> file."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:`` — not ``if not TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits in the body (not the ``else``) of an ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        yield child, type_only
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_only
                yield from _walk(stmt, type_only)
        else:
            yield from _walk(child, type_only)


def imports_of(package: str, module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import of one file, function-level and type-only ones included."""
    tree = ast.parse(path.read_text(), str(path))
    here = module.split(".") if module else []
    base_parts = here if path.name == "__init__.py" else here[:-1]
    found: list[Import] = []

    def add(target: str, names: tuple[str, ...], node: ast.stmt, type_only: bool) -> None:
        internal = target == package or target.startswith(package + ".")
        rel = target.removeprefix(package).lstrip(".") if internal else target
        found.append(Import(module, rel, internal, names, node.lineno, type_only, path))

    for node, type_only in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, (), node, type_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base_parts[: len(base_parts) - (node.level - 1)]
                target = ".".join([package, *parts, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            rel = target.removeprefix(package).lstrip(".")
            submodules = [a.name for a in node.names if f"{rel}.{a.name}".lstrip(".") in known]
            if target.startswith(package) and submodules:
                for name in submodules:  # ``from . import x``: the arrow goes to the module x
                    add(f"{target}.{name}", (), node, type_only)
                rest = tuple(a.name for a in node.names if a.name not in submodules)
                if rest:
                    add(target, rest, node, type_only)
            else:
                add(target, tuple(a.name for a in node.names), node, type_only)
    return found


def scan(root: Path, package: str) -> tuple[dict[str, Path], list[Import]]:
    known = modules_of(root)
    arrows = [imp for module, path in known.items() for imp in imports_of(package, module, path, known)]
    return known, arrows


def component_of(module: str) -> str | None:
    if module == FACADE:
        return FACADE
    best = None
    for prefix in COMPONENTS:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return best


def band_of(module: str) -> int | None:
    component = component_of(module)
    if component == FACADE:
        return len(BAND_NAMES)
    return None if component is None else COMPONENTS[component]


# --------------------------------------------------------------------------- the checks


def unplaced(package: str, known: dict[str, Path]) -> list[str]:
    return [
        f"{shown(path)}: {full(package, m)} has no band: add it to COMPONENTS in tests/test_layers.py"
        for m, path in known.items()
        if band_of(m) is None
    ]


def band_violations(package: str, arrows: list[Import]) -> list[str]:
    """Upward imports, and same-band imports between components not in :data:`SAME_BAND_ARROWS`."""
    problems = []
    for imp in arrows:
        if not imp.internal or not imp.target or imp.source == FACADE:
            continue
        src, dst = component_of(imp.source), component_of(imp.target)
        if src is None or dst is None or src == dst:
            continue
        own, theirs = COMPONENTS[src], COMPONENTS[dst]
        if theirs > own:
            problems.append(
                f"{imp.where(package)} imports {full(package, imp.target)}: upward, from band {own} "
                f"({BAND_NAMES[own]}) to band {theirs} ({BAND_NAMES[theirs]})"
            )
        elif theirs == own and (src, dst) not in SAME_BAND_ARROWS:
            problems.append(
                f"{imp.where(package)} imports {full(package, imp.target)}: {src} -> {dst} within band "
                f"{own} ({BAND_NAMES[own]}) is not in SAME_BAND_ARROWS"
            )
    return problems


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


def cycles(package: str, known: dict[str, Path], arrows: list[Import]) -> list[str]:
    """Every strongly connected component of more than one module, with the imports that close it."""
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in arrows:
        if imp.internal and imp.target in known and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    problems = []
    for group in strongly_connected(graph):
        if len(group) < 2:
            continue
        members = set(group)
        inside = [
            f"    {imp.where(package)} imports {full(package, imp.target)}"
            + (" (under TYPE_CHECKING)" if imp.type_only else "")
            for imp in arrows
            if imp.source in members and imp.target in members and imp.target != imp.source
        ]
        names = ", ".join(full(package, m) for m in group)
        problems.append(f"import cycle between {names}:\n" + "\n".join(inside))
    return problems


def _string_import_lines(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "importlib" and node.attr in ("import_module", "__import__"):
                yield node.lineno, f"importlib.{node.attr}"
            elif node.value.id == "sys" and node.attr == "modules":
                yield node.lineno, "sys.modules"
        elif isinstance(node, ast.Name) and node.id == "__import__":
            yield node.lineno, "__import__"
        elif isinstance(node, ast.ImportFrom) and node.module in ("importlib", "sys"):
            for alias in node.names:
                if alias.name in ("import_module", "__import__", "modules"):
                    yield node.lineno, f"from {node.module} import {alias.name}"


def string_imports(package: str, known: dict[str, Path]) -> list[str]:
    """Imports by name at run time, which the arrows above cannot see (allowed in ``__init__.py``)."""
    problems = []
    for module, path in known.items():
        if path.name == "__init__.py":
            continue
        for line, what in _string_import_lines(ast.parse(path.read_text(), str(path))):
            problems.append(
                f"{shown(path)}:{line}: {full(package, module)} uses {what}: a string import; "
                "import the module with an import statement"
            )
    return problems


def private_imports(package: str, known: dict[str, Path], arrows: list[Import]) -> list[str]:
    """``from other import _helper``: a private shared between modules is a public helper in hiding."""
    problems = []
    for imp in arrows:
        if not imp.internal or imp.target == imp.source:
            continue
        for name in imp.names:
            if (
                name.startswith("_")
                and not name.startswith("__")
                and f"{imp.target}.{name}".lstrip(".") not in known
            ):
                problems.append(
                    f"{imp.where(package)} imports the private {name} from {full(package, imp.target)}: "
                    "make it a public helper of a shared module"
                )
    return problems


def pure_core_externals(package: str, arrows: list[Import]) -> list[str]:
    """Bands 0-1 import only the standard-library and third-party allow-lists."""
    problems = []
    for imp in arrows:
        band = band_of(imp.source)
        if imp.internal or imp.type_only or band is None or band > 1:
            continue
        top = imp.target.split(".")[0]
        allowed = PURE_STDLIB | PURE_THIRD_PARTY | PURE_EXCEPTIONS.get(imp.source, frozenset())
        if top not in allowed:
            problems.append(
                f"{imp.where(package)} imports {imp.target}: the pure core (band {band}) may import only "
                "PURE_STDLIB and PURE_THIRD_PARTY (no I/O, clocks, threads, environment)"
            )
    return problems


def emulator_imports(package: str, arrows: list[Import]) -> list[str]:
    """The emulator shares only pure definitions with the client."""
    problems = []
    for imp in arrows:
        if not imp.internal or not imp.source.startswith("emulator") or not imp.target:
            continue
        if not any(imp.target == p or imp.target.startswith(p + ".") for p in EMULATOR_MAY_IMPORT):
            problems.append(
                f"{imp.where(package)} imports {full(package, imp.target)}: the emulator may import only "
                f"{', '.join(EMULATOR_MAY_IMPORT)} (never the client's state machine, session, transport, "
                "devices, widgets or lab)"
            )
    return problems


def emulator_core_imports(package: str, arrows: list[Import]) -> list[str]:
    """The emulator's sans-I/O core is pure: no I/O, clocks or threads, and no import of its shell."""
    problems = []
    for imp in arrows:
        if imp.source not in EMULATOR_CORE or imp.type_only:
            continue
        if imp.internal:
            band = band_of(imp.target)
            if imp.target in EMULATOR_CORE or (band is not None and band <= 1):
                continue
            problems.append(
                f"{imp.where(package)} imports {full(package, imp.target)}: the emulator core may import "
                "only EMULATOR_CORE modules and bands 0-1 (the I/O shell hands it what it needs)"
            )
            continue
        top = imp.target.split(".")[0]
        if top not in PURE_STDLIB | PURE_THIRD_PARTY | EMULATOR_CORE_EXCEPTIONS.get(imp.source, frozenset()):
            problems.append(
                f"{imp.where(package)} imports {imp.target}: the emulator core may import only "
                "PURE_STDLIB and PURE_THIRD_PARTY (no I/O, clocks, threads, environment)"
            )
    return problems


def speech_imports(package: str, arrows: list[Import]) -> list[str]:
    """Speech is shared by the emulator and the lab, so it depends on neither (nor on the client)."""
    problems = []
    for imp in arrows:
        if not imp.internal or not imp.source.startswith("speech") or not imp.target:
            continue
        if not any(imp.target == p or imp.target.startswith(p + ".") for p in SPEECH_MAY_IMPORT):
            problems.append(
                f"{imp.where(package)} imports {full(package, imp.target)}: speech may import only "
                f"{', '.join(SPEECH_MAY_IMPORT)} (never the emulator, the client's session or transport, "
                "the lab or widgets)"
            )
    return problems


def moved_imports(package: str, arrows: list[Import]) -> list[str]:
    """Imports of a re-export left behind by a move: the package imports the new home."""
    return [
        f"{imp.where(package)} imports {full(package, imp.target)}, which moved to voicelive_nb.speech: "
        "import it from there"
        for imp in arrows
        if imp.internal and imp.target in MOVED_TO_SPEECH
    ]


def stale_arrows(arrows: list[Import]) -> list[str]:
    """Allowed same-band arrows no import uses any more: an allowance nobody needs is a door left open."""
    used = component_arrows(arrows)
    return [
        f"SAME_BAND_ARROWS allows {a} -> {b}, which nothing imports: remove it"
        for a, b in sorted(SAME_BAND_ARROWS - used)
    ]


#: Builtin exceptions that are protocol, not errors: iteration ends. (``SystemExit`` and the other
#: non-``Exception`` classes are never checked; ``AttributeError`` in ``__getattr__`` is its contract.)
ALLOWED_BUILTIN_RAISES = frozenset({"StopIteration", "StopAsyncIteration"})
BUILTIN_EXCEPTIONS = frozenset(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, Exception)
)


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def _is_abstract(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated ``@abstractmethod``, or a body that is only a docstring and the raise."""
    if any(ast.unparse(d).split(".")[-1] == "abstractmethod" for d in function.decorator_list):
        return True
    body = [
        stmt
        for stmt in function.body
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
    ]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def _raises_in(tree: ast.AST) -> Iterator[tuple[ast.Raise, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    """Every ``raise`` with the function it is directly in (None at module or class level)."""

    def visit(node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> Iterator[Any]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, child)
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, None)
            else:
                if isinstance(child, ast.Raise):
                    yield child, function
                yield from visit(child, function)

    yield from visit(tree, None)


def builtin_raises(package: str, known: dict[str, Path]) -> list[str]:
    """``raise ValueError(...)`` and kin: every error of the package derives from VoiceLiveError
    (errors.py has subclasses that are also ValueError, TypeError, RuntimeError, KeyError...)."""
    problems = []
    for module, path in known.items():
        for node, function in _raises_in(ast.parse(path.read_text(), str(path))):
            name = _raised_name(node)
            if name is None or name not in BUILTIN_EXCEPTIONS or name in ALLOWED_BUILTIN_RAISES:
                continue  # a re-raise (``raise``, ``raise exc``) or one of the package's own classes
            in_function = function.name if function is not None else ""
            if name == "NotImplementedError" and function is not None and _is_abstract(function):
                continue
            if name == "AttributeError" and in_function == "__getattr__":
                continue
            problems.append(
                f"{shown(path)}:{node.lineno}: {full(package, module)} raises the builtin {name}: raise a "
                "VoiceLiveError subclass from voicelive_nb/errors.py (one that is also a "
                f"{name} if callers catch that)"
            )
    return problems


def check(root: Path, package: str = "voicelive_nb") -> dict[str, list[str]]:
    """Every rule's violations for the package at ``root``, by rule."""
    known, arrows = scan(root, package)
    return {
        "unplaced": unplaced(package, known),
        "bands": band_violations(package, arrows),
        "cycles": cycles(package, known, arrows),
        "string imports": string_imports(package, known),
        "privates": private_imports(package, known, arrows),
        "pure core": pure_core_externals(package, arrows),
        "emulator": emulator_imports(package, arrows),
        "emulator core": emulator_core_imports(package, arrows),
        "speech": speech_imports(package, arrows),
        "moved": moved_imports(package, arrows),
        "builtin raises": builtin_raises(package, known),
    }


# --------------------------------------------------------------------------- the graph


def component_arrows(arrows: list[Import]) -> set[tuple[str, str]]:
    found = set()
    for imp in arrows:
        if not imp.internal or not imp.target or imp.source == FACADE:
            continue
        src, dst = component_of(imp.source), component_of(imp.target)
        if src and dst and src != dst:
            found.add((src, dst))
    return found


def _node(component: str) -> str:
    return component.replace(".", "_").strip("_") or "facade"


def mermaid(arrows: set[tuple[str, str]]) -> str:
    """The component arrows, bands as subgraphs from the top (apps) down (base)."""
    lines = ["flowchart TB"]
    for band in reversed(range(len(BAND_NAMES))):
        lines.append(f'  subgraph band{band}["{band} {BAND_NAMES[band]}"]')
        lines.extend(
            f'    {_node(c)}["{c.replace(".", "/")}"]' for c in sorted(COMPONENTS) if COMPONENTS[c] == band
        )
        lines.append("  end")
    lines.extend(f"  {_node(a)} --> {_node(b)}" for a, b in sorted(arrows))
    return "\n".join(lines)


def graph_document(root: Path = PACKAGE, package: str = "voicelive_nb") -> str:
    _, arrows = scan(root, package)
    return (
        "# Import graph of voicelive_nb\n\n"
        "Written by `python tests/test_layers.py` from the source; `tests/test_layers.py` checks it is\n"
        "current and that every arrow goes down a band (or along an allowed same-band arrow).\n"
        'Each node is a component (a package or module); an arrow is "imports", module level,\n'
        "function level or under `TYPE_CHECKING`.\n\n"
        "```mermaid\n" + mermaid(component_arrows(arrows)) + "\n```\n"
    )


# --------------------------------------------------------------------------- tests on the package

RESULT = check(PACKAGE)


@pytest.mark.parametrize("rule", list(RESULT))
def test_package_obeys(rule: str) -> None:
    problems = RESULT[rule]
    assert not problems, f"{len(problems)} {rule} violation(s):\n" + "\n".join(problems)


def test_same_band_arrows_are_all_used() -> None:
    _, arrows = scan(PACKAGE, "voicelive_nb")
    stale = stale_arrows(arrows)
    assert not stale, "\n".join(stale)


def test_import_graph_document_is_current() -> None:
    assert GRAPH_DOC.exists() and GRAPH_DOC.read_text() == graph_document(), (
        "docs/import-graph.md is out of date: run `python tests/test_layers.py`"
    )


# --------------------------------------------------------------------------- tests of the checker

#: A small package that obeys every rule; each case below adds one violation to it.
CLEAN = {
    "__init__.py": "import importlib\n\ndef __getattr__(name):\n    return importlib.import_module(name)\n",
    "errors.py": "class VoiceLiveError(Exception):\n    pass\n",
    "protocol/__init__.py": "",
    "protocol/events.py": "from __future__ import annotations\nimport json\nfrom ..errors import VoiceLiveError\n",
    "protocol/state.py": "from typing import TYPE_CHECKING\nfrom . import events\nif TYPE_CHECKING:\n"
    "    import asyncio\n",
    "transport.py": "import asyncio\nfrom .protocol.events import VoiceLiveError\n",
    "session.py": "from .transport import asyncio\nfrom .protocol import state\n",
    "emulator/__init__.py": "",
    "emulator/server.py": "import time\nfrom ..protocol import events\nfrom . import conversation\n",
    "emulator/conversation.py": "from ..protocol.events import json\nfrom ..speech import tts\nfrom . import protocol\n",
    "emulator/protocol.py": "import json\nfrom ..protocol import events\nfrom ..speech import segmenter\n",
    "speech/__init__.py": "",
    "speech/segmenter.py": "import math\nfrom ..errors import VoiceLiveError\n",
    "speech/tts.py": "import ctypes\nimport threading\nfrom .segmenter import math\n",
    "lab/__init__.py": "from .replay import replay\n",
    "lab/replay.py": "from ..session import asyncio\n\ndef replay():\n    from .figures import draw\n",
    "lab/figures.py": "import math\n\ndef draw(result):\n    return result\n",
    "lab/truth.py": "def reference():\n    from ..speech import segmenter, tts\n",
    "plots/__init__.py": "",
    "plots/figures.py": "from ..lab import replay\n",
    "widgets/__init__.py": "",
    "widgets/panel.py": "from ..lab import replay\n",
}

#: (name, file, text appended to it, what the report must say)
VIOLATIONS = [
    ("upward import", "protocol/state.py", "from ..session import asyncio\n", "upward, from band 1"),
    (
        "upward function-level",
        "transport.py",
        "def f():\n    from .session import x\n",
        "upward, from band 2",
    ),
    (
        "upward under `if not TYPE_CHECKING`",
        "protocol/events.py",
        "from typing import TYPE_CHECKING\nif not TYPE_CHECKING:\n    from ..transport import asyncio\n",
        "voicelive_nb.protocol.events imports voicelive_nb.transport: upward",
    ),
    (
        "upward under TYPE_CHECKING",
        "emulator/server.py",
        "if TYPE_CHECKING:\n    from ..lab import x\n",
        "upward",
    ),
    (
        "same band, no arrow",
        "widgets/panel.py",
        "from ..plots import figures\n",
        "widgets -> plots within band 5",
    ),
    (
        "cycle",
        "protocol/events.py",
        "from . import state\n",
        "import cycle between voicelive_nb.protocol.events",
    ),
    (
        "cycle under TYPE_CHECKING",
        "lab/figures.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .replay import replay\n",
        "import cycle between voicelive_nb.lab.figures, voicelive_nb.lab.replay",
    ),
    (
        "importlib.import_module",
        "widgets/panel.py",
        "import importlib\nimportlib.import_module('x')\n",
        "importlib",
    ),
    ("__import__", "session.py", "m = __import__('voicelive_nb.lab')\n", "uses __import__"),
    ("sys.modules", "plots/figures.py", "import sys\nlive = sys.modules.get('x')\n", "uses sys.modules"),
    ("from importlib import", "lab/replay.py", "from importlib import import_module\n", "import_module"),
    ("private helper", "lab/figures.py", "from .replay import _as_config\n", "private _as_config"),
    ("pure core imports time", "protocol/events.py", "import time\n", "imports time: the pure core"),
    (
        "pure core imports os under `if not TYPE_CHECKING`",
        "protocol/state.py",
        "if not TYPE_CHECKING:\n    import os\n",
        "imports os: the pure core",
    ),
    (
        "emulator imports the client state machine",
        "emulator/conversation.py",
        "from ..protocol.state import events\n",
        "imports voicelive_nb.protocol.state: the emulator may import only",
    ),
    (
        "emulator core imports asyncio",
        "emulator/protocol.py",
        "import asyncio\n",
        "imports asyncio: the emulator core",
    ),
    (
        "emulator core imports time, function-level",
        "emulator/protocol.py",
        "def f():\n    import time\n",
        "imports time: the emulator core",
    ),
    (
        "emulator core imports its shell",
        "emulator/protocol.py",
        "def f():\n    from . import conversation\n",
        "imports voicelive_nb.emulator.conversation: the emulator core may import only",
    ),
    (
        "emulator core imports a speech engine",
        "emulator/protocol.py",
        "from ..speech import tts\n",
        "imports voicelive_nb.speech.tts: the emulator core may import only",
    ),
    (
        "emulator imports session",
        "emulator/server.py",
        "def f():\n    from .. import session\n",
        "the emulator",
    ),
    (
        "speech imports the emulator",
        "speech/tts.py",
        "from ..emulator import server\n",
        "imports voicelive_nb.emulator.server: speech may import only",
    ),
    (
        "speech imports transport, function-level",
        "speech/tts.py",
        "def f():\n    from ..transport import asyncio\n",
        "imports voicelive_nb.transport: speech may import only",
    ),
    (
        "speech imports the client state machine",
        "speech/tts.py",
        "from ..protocol.state import events\n",
        "imports voicelive_nb.protocol.state: speech may import only",
    ),
    (
        "speech imports the lab under TYPE_CHECKING",
        "speech/tts.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..lab import replay\n",
        "upward, from band 2",
    ),
    (
        "speech segmenter (pure core) imports time",
        "speech/segmenter.py",
        "import time\n",
        "imports time: the pure core",
    ),
    (
        "the lab imports speech through the emulator",
        "lab/truth.py",
        "from ..emulator.tts import synthesize\n",
        "which moved to voicelive_nb.speech",
    ),
    ("module with no band", "gadgets.py", "", "voicelive_nb.gadgets has no band"),
    (
        "raise ValueError",
        "protocol/events.py",
        "def f(x):\n    raise ValueError(f'bad {x}')\n",
        "builtin ValueError",
    ),
    (
        "raise RuntimeError",
        "session.py",
        "class S:\n    def start(self):\n        raise RuntimeError\n",
        "RuntimeError",
    ),
    (
        "NotImplementedError in a method with a body",
        "lab/figures.py",
        "def g(x):\n    if x:\n        return 1\n    raise NotImplementedError\n",
        "builtin NotImplementedError",
    ),
    (
        "AttributeError outside __getattr__",
        "lab/replay.py",
        "def h():\n    raise AttributeError('x')\n",
        "AttributeError",
    ),
]


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "voicelive_nb"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def reports(package: Path) -> list[str]:
    return [problem for problems in check(package).values() for problem in problems]


def test_checker_passes_a_clean_package(tmp_path: Path) -> None:
    assert reports(write_package(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    ("file", "added", "expected"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_checker_reports(tmp_path: Path, file: str, added: str, expected: str) -> None:
    files = dict(CLEAN)
    files[file] = files.get(file, "") + added
    found = reports(write_package(tmp_path, files))
    assert any(expected in problem for problem in found), f"not reported: {expected!r}; reports: {found}"
    assert any(f"voicelive_nb/{file}" in problem for problem in found), found  # names the file


def test_allowed_raises_are_not_reported(tmp_path: Path) -> None:
    """Re-raises, the package's own errors, iteration's StopIteration, abstract methods, ``__getattr__``."""
    files = dict(CLEAN)
    files["protocol/events.py"] += (
        "class Base:\n"
        "    def value(self):\n"
        '        """Subclasses say."""\n'
        "        raise NotImplementedError\n"
        "def f(exc):\n"
        "    try:\n"
        "        pass\n"
        "    except OSError:\n"
        "        raise\n"
        "    raise exc\n"
        "def g():\n"
        "    raise VoiceLiveError('mine')\n"
        "def h():\n"
        "    raise StopIteration\n"
        "def __getattr__(name):\n"
        "    raise AttributeError(name)\n"
    )
    assert reports(write_package(tmp_path, files)) == []


def test_type_only_stdlib_is_fine_in_the_pure_core(tmp_path: Path) -> None:
    """``if TYPE_CHECKING: import asyncio`` never runs; the same import in the else branch does."""
    files = dict(CLEAN)
    files["protocol/state.py"] += "else:\n    import socket\n"
    found = reports(write_package(tmp_path, files))
    assert [p for p in found if "asyncio" in p] == []
    assert any("imports socket: the pure core" in p for p in found), found


if __name__ == "__main__":
    GRAPH_DOC.parent.mkdir(exist_ok=True)
    GRAPH_DOC.write_text(graph_document())
    print(f"wrote {GRAPH_DOC.relative_to(ROOT)}", file=sys.stderr)
