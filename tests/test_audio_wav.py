"""WavSource / WavSink / read_wav / write_wav, and the in-memory sources (ArraySource, SilenceSource)."""

from __future__ import annotations

import asyncio
import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from crash import run_and_kill

from voicelive_nb.audio.base import AudioSink, AudioSource
from voicelive_nb.audio.memory import ArraySource, SilenceSource
from voicelive_nb.audio.wav import WavSink, WavSource, read_wav, wav_info, write_wav
from voicelive_nb.errors import AudioError, ConfigError

REPO = Path(__file__).resolve().parent.parent
OUT_RATE = 24000


# --- helpers: build WAV files byte by byte (independent of the code under test) --------------------


def sine(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def encode(x: np.ndarray, kind: str) -> bytes:
    """Float samples (interleaved if multi-channel) → raw WAV sample bytes of ``kind``."""
    if kind == "u8":
        return (np.round(x * 127) + 128).astype(np.uint8).tobytes()
    if kind == "i16":
        return np.round(x * 32767).astype("<i2").tobytes()
    if kind == "i24":
        v = np.round(x * (2**23 - 1)).astype("<i4").tobytes()
        return b"".join(v[i : i + 3] for i in range(0, len(v), 4))
    if kind == "i32":
        return np.round(x * (2**31 - 1)).astype("<i4").tobytes()
    if kind == "f32":
        return x.astype("<f4").tobytes()
    if kind == "f64":
        return x.astype("<f8").tobytes()
    raise AssertionError(kind)


def riff(tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False) -> bytes:
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0)
        fmt += struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"junk!\x00"  # an odd-sized extra chunk, padded
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_with_stdlib(path: Path, x: np.ndarray, rate: int, channels: int, kind: str) -> None:
    width = {"u8": 1, "i16": 2, "i24": 3, "i32": 4}[kind]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(encode(x, kind))


async def collect(source: AudioSource, rate: int = OUT_RATE, frame_ms: int = 20) -> list[bytes]:
    return [frame async for frame in source.frames(rate, frame_ms)]


def as_float(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float64) / 32768.0


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


# --- WavSource: formats, channels, rates -----------------------------------------------------------

CASES = [
    # (file rate, channels, encoding, stdlib-writable)
    (8000, 1, "i16", True),
    (16000, 1, "i16", True),
    (24000, 1, "i16", True),
    (44100, 1, "i16", True),
    (16000, 2, "i16", True),
    (16000, 1, "u8", True),
    (22050, 2, "u8", True),
    (16000, 1, "i24", True),
    (48000, 2, "i24", True),
    (16000, 1, "i32", True),
    (16000, 1, "f32", False),
    (48000, 2, "f32", False),
    (16000, 1, "f64", False),
]


@pytest.mark.parametrize(("rate", "channels", "kind", "stdlib"), CASES)
async def test_wav_source_reads_resamples_and_mixes(
    tmp_path: Path, rate: int, channels: int, kind: str, stdlib: bool
) -> None:
    seconds = 0.5
    left = sine(rate, seconds)
    # right channel at half level: the mono mix is 0.75 x the sine
    x = np.stack([left, 0.5 * left], axis=1).reshape(-1) if channels == 2 else left
    path = tmp_path / f"{rate}_{channels}_{kind}.wav"
    if stdlib:
        write_with_stdlib(path, x, rate, channels, kind)
    else:
        path.write_bytes(riff(3, channels, rate, int(kind[1:]), encode(x, kind)))

    source = WavSource(path, pace="fast")
    assert isinstance(source, AudioSource)
    assert source.sample_rate == rate
    assert source.channels == channels
    assert source.duration_s == pytest.approx(seconds, abs=1 / rate)
    frames = await collect(source)
    total = sum(len(f) for f in frames) // 2
    assert abs(total - len(left) * OUT_RATE / rate) <= 1
    assert all(len(f) == 960 for f in frames[:-1])  # 20 ms at 24 kHz
    assert 0 < len(frames[-1]) <= 960
    assert len(frames) == -(-total // 480)
    mono = as_float(b"".join(frames))
    assert peak_hz(mono, OUT_RATE) == pytest.approx(440, abs=3)
    expected_rms = 0.5 / np.sqrt(2) * (0.75 if channels == 2 else 1.0)
    assert rms(mono[500:-500]) == pytest.approx(expected_rms, rel=0.02)


def test_extensible_header_and_24bit_sign_extension(tmp_path: Path) -> None:
    x = np.array([0.0, -0.5, 0.5, -1.0, 0.999])
    path = tmp_path / "ext.wav"
    path.write_bytes(riff(1, 1, 24000, 24, encode(x, "i24"), extensible=True))
    pcm, rate = read_wav(path)
    assert rate == 24000
    got = as_float(pcm)
    assert got == pytest.approx(x, abs=2 / 32768)


def test_8bit_silence_is_zero_not_dc(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    write_with_stdlib(path, np.zeros(800), 8000, 1, "u8")
    pcm, _ = read_wav(path)
    assert pcm == bytes(1600)


def test_read_wav_matches_stdlib_wave(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_with_stdlib(path, sine(16000, 0.3), 16000, 1, "i16")
    with wave.open(str(path), "rb") as w:
        expected = w.readframes(w.getnframes())
    assert read_wav(path) == (expected, 16000)


def test_write_wav_round_trip_read_by_stdlib(tmp_path: Path) -> None:
    pcm = np.arange(-500, 500, dtype="<i2").tobytes()
    path = tmp_path / "w.wav"
    write_wav(path, pcm, 16000)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == pcm
    assert read_wav(path) == (pcm, 16000)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(AudioError, match="even"):
        write_wav(path, b"\x00", 16000)


def test_read_wav_tolerates_unpatched_and_lying_headers(tmp_path: Path) -> None:
    pcm = np.arange(1000, dtype="<i2").tobytes()
    good = riff(1, 1, 24000, 16, pcm)
    data_size_at = good.index(b"data") + 4
    zero = bytearray(good)
    zero[4:8] = b"\x00\x00\x00\x00"
    zero[data_size_at : data_size_at + 4] = b"\x00\x00\x00\x00"  # what a writer killed early leaves
    (tmp_path / "zero.wav").write_bytes(bytes(zero) + b"\x07")  # plus a torn half sample
    assert read_wav(tmp_path / "zero.wav") == (pcm, 24000)
    assert not wav_info(tmp_path / "zero.wav").header_complete
    (tmp_path / "cut.wav").write_bytes(good[:-100])  # header claims more than the file has
    assert read_wav(tmp_path / "cut.wav") == (pcm[:-100], 24000)
    unknown = bytearray(good)
    unknown[data_size_at : data_size_at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "unknown.wav").write_bytes(bytes(unknown))
    assert read_wav(tmp_path / "unknown.wav") == (pcm, 24000)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (riff(6, 1, 8000, 8, bytes(100)), r"format tag 0x0006 \(A-law\)"),
        (riff(7, 1, 8000, 8, bytes(100)), r"0x0007 \(mu-law\)"),
        (riff(2, 1, 8000, 4, bytes(100)), "ADPCM"),
        (riff(1, 1, 8000, 12, bytes(100)), "12 bits"),
        (riff(3, 1, 8000, 16, bytes(100)), "float PCM with 16 bits"),
        (b"ID3\x03" + bytes(100), "not a RIFF/WAVE file"),
        (b"", "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "no fmt chunk"),
        (b"RF64" + bytes(40), "RF64"),
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad input.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        WavSource(path)
    assert str(path) in str(info.value)
    with pytest.raises(AudioError, match=message):
        read_wav(path)


def test_missing_file_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="cannot open") as info:
        WavSource(path)
    assert str(path) in str(info.value)


# --- WavSource: pacing --------------------------------------------------------------------------


async def test_realtime_pacing_follows_the_deadline_schedule(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    write_with_stdlib(path, sine(16000, 0.5), 16000, 1, "i16")
    source = WavSource(path)  # pace="realtime" by default
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, int]] = []
    start = loop.time()
    emitted = 0
    async for frame in source.frames(OUT_RATE, 20):
        emitted += len(frame) // 2
        arrivals.append((loop.time() - start, emitted))
    wall = loop.time() - start
    assert wall >= 0.9 * source.duration_s
    assert wall < source.duration_s + 0.15
    lateness = [t - n / OUT_RATE for t, n in arrivals]
    # a frame is released when a microphone would have finished capturing it: never early,
    # and the delay does not accumulate from frame to frame
    assert min(lateness) > -0.003
    assert max(lateness) < 0.04
    assert lateness[-1] < 0.04


async def test_realtime_pacing_catches_up_after_a_stall(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    write_with_stdlib(path, sine(24000, 0.6), 24000, 1, "i16")
    source = WavSource(path)
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = 0
    async for _ in source.frames(OUT_RATE, 20):
        count += 1
        if count == 5:
            time.sleep(0.2)  # noqa: ASYNC251 - a slow consumer blocking the loop is the point
    wall = loop.time() - start
    # a sum of per-frame sleeps would end at 0.6 + 0.2 s; the deadline schedule catches up
    assert wall < 0.6 + 0.08
    assert wall >= 0.9 * 0.6


async def test_fast_pacing_is_fast_and_yields_to_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "two.wav"
    write_with_stdlib(path, sine(24000, 2.0), 24000, 1, "i16")
    source = WavSource(path, pace="fast")
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    started = time.perf_counter()
    frames = await collect(source)
    elapsed = time.perf_counter() - started
    stop = True
    await task
    assert len(frames) == 100
    assert elapsed < 0.1 * source.duration_s
    assert ticks >= len(frames) - 1  # the other task ran between frames


async def test_lead_tail_silence_loop_and_gain(tmp_path: Path) -> None:
    pcm = np.full(2400, 1000, dtype="<i2").tobytes()  # 100 ms at 24 kHz
    path = tmp_path / "dc.wav"
    write_wav(path, pcm, OUT_RATE)
    source = WavSource(path, pace="fast", lead_silence_ms=50, tail_silence_ms=30, gain=2.0)
    out = b"".join(await collect(source))
    samples = np.frombuffer(out, dtype="<i2")
    assert len(samples) == 1200 + 2400 + 720
    assert not samples[:1200].any()
    assert (samples[1200:3600] == 2000).all()
    assert not samples[3600:].any()

    looped = WavSource(path, pace="fast", loop=True, tail_silence_ms=10, lead_silence_ms=20)
    frames = []
    async for frame in looped.frames(OUT_RATE, 20):
        frames.append(frame)
        if len(frames) == 30:
            break
    await looped.aclose()
    assert all(len(f) == 960 for f in frames)  # frames run across the seams
    one_pass = pcm + bytes(2 * 240)
    expected = bytes(2 * 480) + one_pass * 10
    assert b"".join(frames) == expected[: 30 * 960]

    loud = WavSource(path, pace="fast", gain=100.0)
    assert set(np.frombuffer(b"".join(await collect(loud)), dtype="<i2").tolist()) == {32767}


async def test_aclose_stops_a_running_iterator(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    write_wav(path, bytes(2 * OUT_RATE * 10), OUT_RATE)
    source = WavSource(path, pace="fast")
    count = 0
    async for _ in source.frames(OUT_RATE):
        count += 1
        if count == 3:
            await source.aclose()
    assert count == 3
    await source.aclose()  # idempotent
    assert await collect(source) == []


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    write_wav(path, bytes(100), OUT_RATE)
    with pytest.raises(ConfigError, match="pace"):
        WavSource(path, pace="slow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lead_silence_ms"):
        WavSource(path, lead_silence_ms=-1)
    with pytest.raises(ConfigError, match="frame_ms"):
        WavSource(path).frames(OUT_RATE, 0)


# --- in-memory sources ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["float32", "float64", "int16", "bytes", "stereo"])
async def test_array_source_inputs(kind: str) -> None:
    x = sine(16000, 0.25)
    samples: np.ndarray | bytes
    if kind == "int16":
        samples = np.round(x * 32767).astype(np.int16)
    elif kind == "bytes":
        samples = np.round(x * 32767).astype("<i2").tobytes()
    elif kind == "stereo":
        samples = np.stack([x, x], axis=1).astype(np.float32)
    else:
        samples = x.astype(kind)
    source = ArraySource(samples, 16000, tail_silence_ms=40)
    out = as_float(b"".join(await collect(source)))
    assert len(out) == 6000 + 960
    assert not out[6000:].any()
    assert peak_hz(out[:6000], OUT_RATE) == pytest.approx(440, abs=5)
    assert rms(out[300:5700]) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_array_source_rejects_other_dtypes() -> None:
    with pytest.raises(AudioError, match="dtype"):
        ArraySource(np.zeros(10, dtype=np.int32), 16000)
    with pytest.raises(AudioError, match="even"):
        ArraySource(b"\x00\x00\x00", 16000)


async def test_silence_source() -> None:
    frames = await collect(SilenceSource(50, pace="fast"), 16000, 20)
    assert [len(f) for f in frames] == [640, 640, 320]
    assert not any(any(f) for f in frames)
    forever = SilenceSource(None, pace="fast")
    count = 0
    async for _ in forever.frames(OUT_RATE):
        count += 1
        if count == 500:
            await forever.aclose()
    assert count == 500


# --- WavSink ----------------------------------------------------------------------------------


def test_wav_sink_writes_a_valid_file_after_every_write(tmp_path: Path) -> None:
    path = tmp_path / "out" / "reply.wav"
    sink = WavSink(path)
    assert isinstance(sink, AudioSink)
    sink.open(OUT_RATE)
    written = b""
    for i, item in enumerate(["A", "A", "B"]):
        chunk = np.full(480 * (i + 1), i + 1, dtype="<i2").tobytes()
        sink.write(item, chunk)
        written += chunk
        with wave.open(str(path), "rb") as w:  # readable while still open: the header is current
            assert w.getframerate() == OUT_RATE
            assert w.readframes(w.getnframes()) == written
    assert sink.played_ms("A") == 60
    assert sink.played_ms("B") == 60
    sink.clear()  # a file "plays" instantly: nothing to drop
    assert sink.played_ms("A") == 60
    sink.close()
    sink.close()
    assert read_wav(path) == (written, OUT_RATE)
    with pytest.raises(AudioError, match="closed"):
        sink.write("A", b"\x00\x00")


def test_wav_sink_misuse(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "x.wav")
    with pytest.raises(AudioError, match="not open"):
        sink.write("A", b"\x00\x00")
    sink.open(16000)
    with pytest.raises(AudioError, match="already opened"):
        sink.open(16000)
    with pytest.raises(AudioError, match="even"):
        sink.write("A", b"\x00")
    sink.close()


CHILD_SINK = r"""
import sys, time
import numpy as np
from voicelive_nb.audio.wav import WavSink
sink = WavSink(sys.argv[1])
sink.open(24000)
chunk_frames = 1200  # 50 ms per write, like a big response.audio.delta
total = 0
while True:
    n = total // 2
    sink.write("item", (np.arange(n, n + chunk_frames) % 30011).astype("<i2").tobytes())
    total += 2 * chunk_frames
    print(total, flush=True)
    time.sleep(0.001)
"""


@pytest.mark.parametrize("min_bytes", [0, 60_000, 600_000])
def test_wav_sink_survives_kill_9(tmp_path: Path, min_bytes: int) -> None:
    path = tmp_path / "crash.wav"
    lines = run_and_kill(tmp_path, CHILD_SINK, [str(path)], path, min_bytes)
    reported = int(lines[-1]) if lines else 0
    chunk_bytes = 2400
    pcm, rate = read_wav(path)
    assert rate == OUT_RATE
    # data and header are written before the child reports; at most one more write was in flight
    assert reported <= len(pcm) <= reported + chunk_bytes
    assert len(pcm) >= min_bytes - 44 - chunk_bytes
    expected = (np.arange(len(pcm) // 2) % 30011).astype("<i2").tobytes()
    assert pcm == expected
    with wave.open(str(path), "rb") as w:  # a reader that trusts the header
        assert w.getframerate() == OUT_RATE
        header_frames = w.getnframes()
        assert w.readframes(header_frames) == expected[: 2 * header_frames]
    missing_s = (reported - 2 * header_frames) / 2 / OUT_RATE
    assert missing_s <= 0.0  # the bound is 1 s; measured: nothing the child reported is missing
    assert 2 * header_frames >= len(pcm) - chunk_bytes
