"""Helpers for real-browser tests: a private JupyterLab server and Debian's Chromium via Playwright.

- :func:`jupyter_lab` starts ``jupyter lab`` on 127.0.0.1 with an OS-chosen free port, a random
  token, no browser, and fresh config/runtime/settings/workspace dirs (news and update checks
  off), waits until ``/api/status`` answers, and stops it by PID (its process group, so kernels
  it started go too).
- :func:`chromium` opens a fresh persistent Playwright context on ``/usr/bin/chromium`` (never a
  downloaded browser) with the flags that work headless as root in a VM.
- :func:`console_problems` collects console errors and page errors for a page.

Nothing here sleeps to synchronise: readiness is a polled condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"

#: Flags measured to work for headless Chromium as root without a GPU or network
#: (see the project's jupyter reference, section 4).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: JupyterLab user settings written into the fresh settings dir: no news or update toasts, and no
#: autosave (the server may serve a repository folder: a test must never write its notebooks).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

#: Environment variables the server (and so its kernels) must not inherit: the browser test
#: runs on the built-in emulator whatever the developer's shell is configured for, and never on
#: a sound server another test started (tests/virtual_audio.py exports PULSE_SERVER meanwhile).
SCRUBBED_ENV_PREFIXES = ("AZURE_VOICE_LIVE_", "VOICE_LIVE_", "JUPYTER_", "JUPYTERLAB_", "JPY_", "PULSE_")


@dataclass
class LabServer:
    """A running JupyterLab server started by :func:`jupyter_lab`."""

    process: subprocess.Popen[bytes]
    root_dir: Path
    home: Path
    token: str
    port: int = 0
    started_s: float = 0.0
    log_path: Path = field(default_factory=Path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, notebook: str, workspace: str | None = None) -> str:
        """A URL that opens ``notebook`` in a workspace of its own (``&reset``: no restored tabs)."""
        workspace = workspace or f"t{secrets.token_hex(6)}"
        return f"{self.base_url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}&reset"

    def api(self, path: str, timeout: float = 5.0) -> Any:
        """GET a server API path (``/api/...``) with the token; the decoded JSON."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server by its PID (SIGTERM: it shuts its kernels down), then its process group."""
        proc = self.process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # Kernels are in the server's process group (start_new_session=True): anything left
        # of it after the server exited is ours to end.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PYTHONUNBUFFERED="1",
    )
    return env


def _write_settings(settings_dir: Path) -> None:
    for rel, value in LAB_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def start_lab(root_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> LabServer:
    """Start ``jupyter lab`` serving ``root_dir``; returns once its API answers."""
    home = Path(tempfile.mkdtemp(prefix="vlnb-lab-"))
    for sub in ("config", "runtime", "settings", "workspaces", "ipython"):
        (home / sub).mkdir()
    _write_settings(home / "settings")
    token = secrets.token_hex(16)
    log_path = home / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=0",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={Path(root_dir).resolve()}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    t0 = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cmd,
            cwd=str(root_dir),
            env=_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(process=process, root_dir=Path(root_dir), home=home, token=token, log_path=log_path)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        raise
    server.started_s = time.monotonic() - t0
    return server


def _wait_ready(server: LabServer, timeout: float) -> None:
    """Poll until the server wrote its runtime file (which has the real port) and /api/status answers."""
    deadline = time.monotonic() + timeout
    info_file = server.home / "runtime" / f"jpserver-{server.process.pid}.json"
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with code {server.process.returncode}:\n{server.log()[-3000:]}"
            )
        if not server.port and info_file.exists():
            with contextlib.suppress(ValueError, OSError):
                server.port = int(json.loads(info_file.read_text())["port"])
        if server.port:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                server.api("/api/status", timeout=2)
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"jupyter lab not ready within {timeout:g} s:\n{server.log()[-3000:]}")
        time.sleep(0.1)  # poll interval of a condition with a deadline, not a synchronising sleep


@contextlib.contextmanager
def jupyter_lab(root_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> Iterator[LabServer]:
    """A JupyterLab server for the duration of the block; stopped (by PID) and cleaned up after."""
    server = start_lab(root_dir, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


@contextlib.contextmanager
def chromium(
    *, viewport: tuple[int, int] = (1280, 1000), extra_args: list[str] | None = None
) -> Iterator[Any]:
    """A fresh Playwright persistent context on Debian's Chromium (a new profile dir, removed after)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="vlnb-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS + list(extra_args or []),
                viewport={"width": viewport[0], "height": viewport[1]},
                # the browser is the user's machine: it must not see the test's virtual sound server
                env={k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "XDG_RUNTIME_DIR"))},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class ConsoleProblems:
    """Console errors and uncaught page errors seen by a page, minus the listed benign ones."""

    benign: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def _add(self, text: str) -> None:
        if any(pattern in text for pattern in self.benign):
            self.ignored.append(text)
        else:
            self.errors.append(text)


def console_problems(page: Any, benign: tuple[str, ...] = ()) -> ConsoleProblems:
    """Start collecting ``console.error`` messages and ``pageerror`` exceptions of ``page``."""
    problems = ConsoleProblems(benign=benign)

    def on_console(message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            problems._add(f"console.error: {message.text} ({location.get('url', '?')})")

    def on_page_error(error: Any) -> None:
        problems._add(f"pageerror: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return problems
