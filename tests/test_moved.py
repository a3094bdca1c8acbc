"""Modules that moved (issue #12) keep their old import path for one release, with a warning.

Each old path forwards its public names to the new module with a ``DeprecationWarning`` that
names the new path and the release that removes the old one, attributed to the importing line
(so Jupyter shows it under the user's cell). Nothing shipped uses an old path: not the package
(tests/test_layers.py), not the notebooks, the README or the docs (here); and the suite's own
warning filter (pyproject.toml) turns an old import in a test into an error.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import pytest

from voicelive_nb.moved import REMOVED_IN

ROOT = Path(__file__).resolve().parent.parent

#: old module -> new module
MOVED = {
    "voicelive_nb.emulator.tts": "voicelive_nb.speech.tts",
    "voicelive_nb.emulator.vad": "voicelive_nb.speech.vad",
    "voicelive_nb.emulator.asr": "voicelive_nb.speech.asr",
    "voicelive_nb.emulator.behavior": "voicelive_nb.speech.segmenter",
    "voicelive_nb.emulator.streaming_asr": "voicelive_nb.speech.streaming_asr",
    "voicelive_nb.plots.lab_figures": "voicelive_nb.lab.figures",
}


def _names(old: str) -> tuple[str, ...]:
    names: tuple[str, ...] = importlib.import_module(old).MOVED_NAMES
    return names


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_name_is_forwarded_with_a_warning_naming_the_new_path(old: str) -> None:
    new = importlib.import_module(MOVED[old])
    stub = importlib.import_module(old)
    assert _names(old), f"{old} lists no moved names"
    for name in _names(old):
        expected = f"{old} moved to {MOVED[old]}: import {name} from {MOVED[old]}"
        with pytest.deprecated_call(match=re.escape(expected)) as record:
            value = getattr(stub, name)
        assert value is getattr(new, name)
        assert f"removed in voicelive_nb {REMOVED_IN}" in str(record[0].message)


def test_the_warning_points_at_the_importing_line() -> None:
    code = compile("from voicelive_nb.emulator.tts import synthesize\n", "user_cell.py", "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code, {})
    (w,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert (w.filename, w.lineno) == ("user_cell.py", 1)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_name_that_did_not_move_is_an_attribute_error(old: str) -> None:
    stub = importlib.import_module(old)
    with pytest.raises(AttributeError, match=re.escape(f"module {old!r} has no attribute 'nope'")):
        stub.nope  # noqa: B018
    with pytest.raises(AttributeError):
        stub._private  # noqa: B018  (privates never moved: patch them on the new module)


def test_the_suites_filter_makes_an_old_import_in_a_test_an_error() -> None:
    with pytest.raises(DeprecationWarning, match="moved to voicelive_nb.speech.tts"):
        from voicelive_nb.emulator.tts import synthesize  # noqa: F401


def _shipped_texts() -> list[Path]:
    return [
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]


def test_no_notebook_readme_or_doc_uses_an_old_path() -> None:
    # an import of an old path (prose may name one, as the README's note on the move does)
    alternatives = []
    for old in MOVED:
        parent, leaf = old.rsplit(".", 1)
        alternatives += [rf"(?:from|import) {re.escape(old)}\b", rf"from {re.escape(parent)} import {leaf}\b"]
    pattern = re.compile("|".join(alternatives))
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _shipped_texts()
        for m in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"old import paths in shipped files (use the new module): {found}"
