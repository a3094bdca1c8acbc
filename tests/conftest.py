"""Shared fixtures: a real virtual microphone and speaker (PulseAudio null sinks) for device tests.

With ``VOICELIVE_NB_REQUIRE_EXTRAS=1`` (``scripts/test`` sets it, so CI has it) a test that
would be *skipped* because a declared extra is missing — a ``pytest.importorskip`` of a
package of ``[all]`` / ``[dev]`` in pyproject.toml, or the virtual sound server's
"pulseaudio is not installed" — *fails* instead: a broken set-up must not look like a green
run with skips. Unset (a plain local ``pytest``), such tests skip as before.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from virtual_audio import VirtualAudio

from voicelive_nb.audio.wav import write_wav
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.speech.tts import synthesize


@pytest.fixture(scope="session")
def virtual_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualAudio]:
    """A private PulseAudio with a virtual mic (``speak``) and speaker (``capture_path``, ``tap``).

    Started once per test session; PortAudio sees it as the default input and output.
    """
    if shutil.which("pulseaudio") is None:
        pytest.skip(
            "pulseaudio is not installed, so there is no virtual microphone/speaker; "
            "install it with: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
        )
    va = VirtualAudio(tmp_path_factory.mktemp("virtual_audio"))
    va.start()
    try:
        yield va
    finally:
        va.stop()


@pytest.fixture
def quiet_gc() -> Iterator[None]:
    """For real-time audio tests: the heap this long test process has built up, out of the collector's way.

    Late in the whole suite one full collection takes 100+ ms (270 ms measured for 1.5 M small
    objects), enough to run a 60 ms jitter buffer dry between two deltas: an underrun that is the
    test process's pause, not the code under test. ``gc.freeze()`` moves what exists now into the
    permanent generation (a full collection then took 2 µs); the test's own garbage is still collected.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    """The built-in emulator on its own thread, answering as fast as it can (one per test module)."""
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short spoken question as a 24 kHz WAV."""
    path = tmp_path_factory.mktemp("wav") / "question.wav"
    write_wav(path, synthesize("What time is it?").pcm16, 24000)
    return path


# --- a missing declared extra is a failure under VOICELIVE_NB_REQUIRE_EXTRAS=1 --------------------------

REQUIRE_EXTRAS_ENV = "VOICELIVE_NB_REQUIRE_EXTRAS"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def declared_modules(pyproject: Path = _PYPROJECT) -> set[str]:
    """Import names of every package of the optional extras (same rule as scripts/setup)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    names = set()
    for deps in project.get("optional-dependencies", {}).values():
        for dep in deps:
            dist = re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0]
            if dist.lower() != "voicelive_nb":
                names.add(dist.replace("-", ".") if dist.startswith("azure-") else dist.replace("-", "_"))
    return names


def missing_extra(reason: str, declared: set[str]) -> str | None:
    """The declared extra (or ``pulseaudio``) whose absence caused this skip, else None."""
    if "pulseaudio is not installed" in reason:
        return "pulseaudio"
    match = re.search(r"could not import '([\w.]+)'(?:: No module named '([\w.]+)')?", reason)
    if match is None:
        return None
    for name in (match.group(2), match.group(1)):
        if name is None:
            continue
        if name.split(".")[0] == "voicelive_nb" and match.group(2) is None:
            return name  # our own module failed to import: never a skip
        for module in declared:
            if name == module or name.startswith(module + ".") or module.startswith(name + "."):
                return module
    return None


def _require_extras(report: Any) -> None:
    if os.environ.get(REQUIRE_EXTRAS_ENV) != "1" or not report.skipped:
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    what = missing_extra(reason, declared_modules())
    if what is None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{reason}\n{REQUIRE_EXTRAS_ENV}=1: {what} is a declared dependency of the test set-up, "
        "so its absence is a failure, not a skip; run scripts/setup (its output says what failed)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _require_extras(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _require_extras(outcome.get_result())  # type: ignore[attr-defined]
