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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_talk_keeps_the_reply_without_out_and_hears_the_question(tmp_path: Path) -> None:
    (tmp_path / "reply.wav").write_bytes(b"mine")  # a file of the user's: never overwritten
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), "talk", "--wav", str(QUESTION), "--quiet"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip()
        for line in proc.stdout.splitlines()
        if ":" in line
    }
    assert lines["user"] == "what is the weather like today"  # the bundled question, word for word
    assert lines["assistant"] == 'You said: "what is the weather like today".'
    assert "assistant audio saved to reply-1.wav" in proc.stdout
    assert (tmp_path / "reply.wav").read_bytes() == b"mine"
    pcm, rate = read_wav(tmp_path / "reply-1.wav")
    assert rate == 24000 and len(pcm) / 48 > 500


def test_connecting_line_and_errors_never_show_a_key_in_the_endpoint(tmp_path: Path) -> None:
    secret = "s3cr3t-IN-THE-URL-9d1c"
    endpoint = f"ws://user:{secret}@127.0.0.1:{free_port()}/?api-key={secret}"  # nothing listens there
    proc = subprocess.run(
        [
            str(BIN / "voicelive-nb"),
            "talk",
            "--wav",
            str(QUESTION),
            "--endpoint",
            endpoint,
            "--api-key",
            secret,
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    connecting = next(line for line in proc.stdout.splitlines() if line.startswith("connecting: "))
    assert "127.0.0.1" in connecting and "***" in connecting
    assert "cannot connect" in proc.stderr and "Traceback" not in proc.stderr
    assert secret not in proc.stdout + proc.stderr


def test_emulator_command_says_how_to_use_it_and_names_itself() -> None:
    with subprocess.Popen(
        [str(BIN / "voicelive-nb"), "emulator", "--port", "0"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()  # still the first line, for scripts
            assert url.startswith("ws://127.0.0.1:")
            banner = [proc.stdout.readline().strip() for _ in range(5)]
            assert banner[0] == f"the Voice Live emulator is listening on {url}"
            assert banner[1].startswith("key:") and "any" in banner[1]
            assert banner[2] == f"try:     voicelive-nb talk --endpoint {url} --api-key any --wav {QUESTION}"
            assert banner[4] == "Ctrl-C stops it"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    usage = subprocess.run(
        [str(BIN / "voicelive-nb"), "emulator", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert usage.returncode == 0 and usage.stdout.startswith("usage: voicelive-nb emulator ")


def test_info_without_an_endpoint_names_the_emulator(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "voicelive_nb"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    connection = proc.stdout.split("connection:", 1)[1]
    assert "the built-in emulator" in connection
    assert "Entra" not in connection


def test_talk_help_says_to_keep_the_key_out_of_argv() -> None:
    proc = subprocess.run(
        [str(BIN / "voicelive-nb"), "talk", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    text = " ".join(proc.stdout.split())
    assert "Prefer the environment or a .env file" in text and "process list" in text


def test_the_bundled_question_is_heard_word_for_word_even_without_a_phrase_list() -> None:
    """The recording itself is recognised right by the emulator's open-vocabulary PocketSphinx
    (the phrase list the demos add is a second guard, not the only one)."""
    pytest.importorskip("pocketsphinx")
    import asyncio

    from voicelive_nb import SessionConfig
    from voicelive_nb.audio.wav import WavSource
    from voicelive_nb.data import QUESTION_TEXT, QUESTION_WAV
    from voicelive_nb.emulator.server import start_in_thread
    from voicelive_nb.session import Session

    assert QUESTION_WAV == QUESTION
    # whole-utterance decoding: whether "fast" audio is streamed to the recogniser depends on how
    # fast it arrives (> 3x real time is decoded after the turn), and streaming hears a
    # connection's first utterance less well (see speech/streaming_asr.py); this test is about
    # the recording, not the timing
    emu = start_in_thread(pace="fast", streaming_asr=False)
    try:

        async def heard() -> str:
            session = Session(SessionConfig.server_vad(), endpoint=emu.url, api_key="k", dotenv=False)
            async with session:
                session.stream(WavSource(QUESTION_WAV, pace="fast", tail_silence_ms=1500))
                done = await session.wait_for(
                    "conversation.item.input_audio_transcription.completed", timeout=30
                )
            return str(done.transcript)

        text = asyncio.run(heard())
    finally:
        emu.stop()
    assert text.split() == QUESTION_TEXT.lower().rstrip("?").split()
