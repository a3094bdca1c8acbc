"""The notebooks as a new user runs them (Run All in a real kernel, outside nbval), and what a
saved notebook keeps of an expected error.

nbval (``scripts/test``) runs the notebooks too, but honours its own markers; here every cell
runs as in JupyterLab's Run All, on a fresh environment (no Azure settings, no ``.env``): no cell
may raise, and optional cells must skip by a visible condition.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: Not a real key: distinctive, so finding it anywhere in the saved notebook is unambiguous.
FAKE_KEY = "vlnb-FAKE-KEY-7f3a9c2e51d84b06"


def fresh_env() -> dict[str, str]:
    """The environment of a machine that never heard of Azure Voice Live."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "VOICE_LIVE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_notebook(nb: Any, cwd: Path, timeout: int = 240) -> Any:
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,  # record errors like Run All shows them, then assert on them
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=fresh_env(), cwd=str(cwd))
    return nb


def errors(nb: Any) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i}: {output['ename']}: {output['evalue']}")
    return found


def texts(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif output.get("output_type") == "error":
            parts.append("\n".join(output["traceback"]))
        else:
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@pytest.mark.parametrize(
    "name", ["01_quickstart.ipynb", "02_vad_lab.ipynb", "03_tools.ipynb", "04_barge_in_lab.ipynb"]
)
def test_run_all_on_a_fresh_machine(name: str, tmp_path: Path) -> None:
    # a copy in an empty folder: no my_recording.wav, no .env next to it
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    nb = nbformat.read(tmp_path / name, as_version=4)
    run_notebook(nb, tmp_path)
    assert errors(nb) == [], "Run All stopped"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    everything = "\n".join(texts(c) for c in code)
    if name == "02_vad_lab.ipynb":
        assert "replays go to: the built-in emulator" in everything
        assert "skipped: put my_recording.wav" in everything
        assert "skipped: set USE_AZURE = True" in everything  # nothing sent to Azure by default
        assert "the text matches the table" in everything
    elif name == "03_tools.ipynb":
        assert "questions go to: the built-in emulator" in everything
        assert "count_missing({'column': 'price'}) -> 3  [completed]" in everything
        assert "assistant: Count missing says: 3" in everything
        assert "checked" in everything and "each ended, in order: True" in everything
    elif name == "04_barge_in_lab.ipynb":
        assert "the lab runs on: the built-in emulator" in everything
        assert "the text matches the table: True" in everything
        (client,) = [line for line in everything.splitlines() if line.strip().startswith("client_ref_ec:")]
        assert "(0 from echo), 0 of 2 interruptions missed" in client, client
        assert (
            everything.count("image/png") == 0
            and sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])) == 4
        )  # a figure per condition
    else:
        assert "heard the question: True" in everything
        assert "what is the weather like today" in everything
        assert "3 VAD spans, in order: True" in everything
        assert "skipped: set USE_AZURE = True" in everything


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_expected_errors_are_one_block_and_leave_no_key_in_the_saved_notebook(tmp_path: Path) -> None:
    """A refused connection with a key typed inline: the saved outputs show the error in a line or
    two, without library frames or source lines, and the key nowhere; a bug keeps its traceback."""
    port = free_port()  # nothing listens there: the connection is refused
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from voicelive_nb import NotebookSession, SessionConfig\n"
            f"session = NotebookSession(SessionConfig.server_vad(), endpoint='ws://127.0.0.1:{port}',\n"
            f"                          api_key='{FAKE_KEY}', mic=False, speaker=False, dotenv=False)\n"
            "session.start(wait=True, timeout=20)"
        ),
        nbformat.v4.new_code_cell(
            f"NotebookSession(endpoint='ws://user:{FAKE_KEY}@127.0.0.1:{port}/?api-key={FAKE_KEY}',\n"
            f"                api_key='{FAKE_KEY}', mic=False, speaker=False, dotenv=False).start(wait=True, timeout=20)"
        ),
        nbformat.v4.new_code_cell("SessionConfig.server_vad().with_changes({'turn_detection.threshold': 7})"),
        nbformat.v4.new_code_cell("def helper():\n    return 1 / 0\n\nhelper()"),
        nbformat.v4.new_code_cell(
            "from voicelive_nb.errors import VoiceLiveError\n"
            "VoiceLiveError.concise_tracebacks = False\n"
            "SessionConfig.server_vad().with_changes({'turn_detection.threshold': 7})"
        ),
    ]
    run_notebook(nb, tmp_path, timeout=60)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    refused, in_url, config, bug, verbose = (
        [o for o in c.outputs if o.output_type == "error"] for c in nb.cells
    )
    for [error] in (refused, in_url):
        assert error.ename == "TransportError"
        shown = "\n".join(error.traceback)
        assert "cannot connect" in shown and "127.0.0.1" in shown
        assert len(error.traceback) <= 3, error.traceback  # one block, not 6-15 frames
        assert "File " not in shown and "site-packages" not in shown and "voicelive_nb/" not in shown
        assert "api_key=" not in shown and "start(wait=True" not in shown  # no source lines
    [error] = config
    assert error.ename == "ConfigError" and len(error.traceback) <= 3
    assert "turn_detection.threshold" in "\n".join(error.traceback)
    [error] = bug
    assert error.ename == "ZeroDivisionError"
    assert "helper" in "\n".join(error.traceback) and len(error.traceback) > 2  # a bug: the full traceback
    [error] = verbose
    assert "Traceback" in "\n".join(error.traceback) and len(error.traceback) > 3  # asked for: the full one
    outputs = [nbformat.writes(nbformat.v4.new_notebook(cells=[c])) for c in nb.cells]
    for i, cell in enumerate(nb.cells):
        saved = nbformat.writes(
            nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=cell.outputs)])
        )
        assert FAKE_KEY not in saved, f"the key is in the saved outputs of cell {i}"
    assert any(FAKE_KEY in text for text in outputs)  # (it is in the source cells, as typed: a sanity check)
