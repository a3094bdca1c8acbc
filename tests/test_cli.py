"""The command line, run as a user would: a fresh process with no Azure settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from voicelive_nb.audio.wav import read_wav

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "voicelive_nb" / "data" / "question.wav"
BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    """No AZURE_* or VOICE_LIVE_* variables: what a newcomer's shell has."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def test_talk_with_no_environment_uses_the_emulator_and_prints_both_transcripts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), "talk", "--wav", str(QUESTION), "--out", "reply.wav", "--record", "rec"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "using the built-in emulator" in out
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}
    assert lines["user"] and lines["user"] != "(no transcript)"
    assert lines["assistant"].startswith("You said")
    assert "speech_stopped -> first audio" in out
    assert lines["response"] == "completed"
    pcm, rate = read_wav(tmp_path / "reply.wav")
    assert rate == 24000
    assert len(pcm) / 48 > 500  # more than half a second of reply audio
    assert {p.name for p in (tmp_path / "rec").iterdir()} >= {"events.jsonl", "mic.wav", "assistant.wav"}


def test_talk_reports_a_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), "talk", "--wav", "nope.wav"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no such WAV file: nope.wav" in proc.stderr


def test_talk_with_a_bad_endpoint_fails_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            str(BIN / "voicelive-nb"),
            "talk",
            "--wav",
            str(QUESTION),
            "--endpoint",
            "ftp://nowhere",
            "--api-key",
            "k",
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "endpoint must start with https://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_masks_the_key(tmp_path: Path) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    (tmp_path / ".env").write_text(f"AZURE_VOICE_LIVE_API_KEY={secret}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "voicelive_nb"],
        cwd=tmp_path,
        env=clean_env(AZURE_VOICE_LIVE_ENDPOINT="https://example.services.ai.azure.com"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "voicelive_nb 0.1.0" in proc.stdout
    assert "websockets" in proc.stdout and "audio devices:" in proc.stdout
    assert "https://example.services.ai.azure.com" in proc.stdout
    assert "api_key from .env AZURE_VOICE_LIVE_API_KEY" in proc.stdout
    assert secret not in proc.stdout + proc.stderr


def test_emulator_command_prints_url_first_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [str(BIN / "voicelive-nb"), "emulator", "--port", "0"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("ws://127.0.0.1:")
            assert int(first.rsplit(":", 1)[1]) > 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("argv", [["--version"], ["talk", "--help"]])
def test_help_and_version(argv: list[str]) -> None:
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), *argv], env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    assert proc.stdout.strip()


def test_sweep_command_is_routed_to_the_lab(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), "sweep", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "--truth" in proc.stdout
    assert "--grid" in proc.stdout
