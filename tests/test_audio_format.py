"""Tests of voicelive_nb.audio.format: byte math, conversions, soxr resampling, G.711, framing."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelive_nb.audio import format as af

ALL_INT16 = np.arange(-32768, 32768, dtype="<i2").tobytes()


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return af.float_to_pcm16(amplitude * np.sin(2 * np.pi * freq * t))


def peak_hz(pcm16: bytes, rate: int) -> float:
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


# --- bytes per ms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "rate", "expected"),
    [
        ("pcm16", 24000, 48.0),
        ("pcm16", 16000, 32.0),
        ("pcm16", 8000, 16.0),
        ("pcm16_8000hz", 24000, 16.0),
        ("pcm16_16000hz", 24000, 32.0),
        ("pcm16-16000hz", 24000, 32.0),
        ("g711_ulaw", 8000, 8.0),
        ("g711_alaw", 24000, 8.0),
    ],
)
def test_bytes_per_ms(fmt: str, rate: int, expected: float) -> None:
    assert af.bytes_per_ms(fmt, rate) == expected


@pytest.mark.parametrize(("fmt", "rate"), [("mp3", 24000), ("pcm16", 0), ("pcm24", 24000)])
def test_bytes_per_ms_rejects_unknown(fmt: str, rate: int) -> None:
    with pytest.raises(ValueError, match="format|rate"):
        af.bytes_per_ms(fmt, rate)


# --- float conversion --------------------------------------------------------------------------


def test_pcm16_float_round_trip_is_exact_for_every_value() -> None:
    x = af.pcm16_to_float(ALL_INT16)
    assert x.dtype == np.float32
    assert x.min() == -1.0
    assert x.max() == pytest.approx(32767 / 32768)
    assert af.float_to_pcm16(x) == ALL_INT16


def test_float_to_pcm16_clips_and_rounds() -> None:
    out = np.frombuffer(af.float_to_pcm16([2.0, -2.0, 1.0, -1.0, 0.0, 0.4 / 32768, 0.6 / 32768]), dtype="<i2")
    assert out.tolist() == [32767, -32768, 32767, -32768, 0, 0, 1]


def test_odd_byte_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        af.pcm16_to_float(b"\x00\x01\x02")


# --- resampling --------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(24000, 16000), (16000, 24000), (8000, 16000), (22050, 24000)])
def test_resample_keeps_duration_frequency_and_level(src: int, dst: int) -> None:
    tone = sine(1000, 1.0, src)
    out = af.resample(tone, src, dst)
    assert len(out) // 2 == dst
    assert peak_hz(out, dst) == pytest.approx(1000, abs=2)
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert af.rms_dbfs(middle) == pytest.approx(af.rms_dbfs(tone), abs=0.1)


def test_resample_removes_content_above_the_new_nyquist() -> None:
    tone = sine(7000, 1.0, 24000)  # above 4 kHz: gone at 8 kHz, not aliased to 1 kHz
    out = af.resample(tone, 24000, 8000)
    assert af.rms_dbfs(out[1000:-1000]) < af.rms_dbfs(tone) - 60


def test_resample_same_rate_is_identity() -> None:
    tone = sine(440, 0.1, 24000)
    assert af.resample(tone, 24000, 24000) == tone


def test_stream_resampler_is_time_aligned() -> None:
    impulse = np.zeros(24000, dtype="<i2")
    impulse[2400] = 20000  # at 100 ms
    rs = af.StreamResampler(24000, 16000)
    out = np.frombuffer(rs.process(impulse.tobytes()) + rs.flush(), dtype="<i2")
    assert out.size == 16000
    assert int(np.argmax(out)) == 1600


def test_stream_resampler_matches_whole_signal() -> None:
    signal = sine(300, 0.5, 24000) + sine(2500, 0.5, 24000, 0.2)
    rs = af.StreamResampler(24000, 16000)
    streamed = b"".join(rs.process(signal[i : i + 333]) for i in range(0, len(signal), 333)) + rs.flush()
    whole = af.resample(signal, 24000, 16000)
    assert len(streamed) == len(whole)
    diff = np.abs(np.frombuffer(streamed, "<i2").astype(int) - np.frombuffer(whole, "<i2"))
    assert diff.max() <= 2


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4800), max_size=12))
def test_stream_resampler_output_does_not_depend_on_chunking(cuts: list[int]) -> None:
    signal = sine(500, 0.1, 24000) + sine(3000, 0.1, 24000, 0.3)
    reference = af.StreamResampler(24000, 16000)
    expected = reference.process(signal) + reference.flush()
    rs = af.StreamResampler(24000, 16000)
    edges = [0, *sorted(cuts), len(signal)]  # byte offsets: odd ones split a sample
    out = b"".join(rs.process(signal[a:b]) for a, b in itertools.pairwise(edges)) + rs.flush()
    assert out == expected


def test_stream_resampler_passthrough_and_reset() -> None:
    rs = af.StreamResampler(16000, 16000)
    assert rs.process(b"\x01") == b""
    assert rs.process(b"\x02\x03") == b"\x01\x02"
    rs.reset()
    assert rs.process(b"\x04\x05") == b"\x04\x05"


# --- G.711 -------------------------------------------------------------------------------------


def test_g711_known_code_points() -> None:
    # values fixed by the G.711 tables
    assert af.ulaw_encode(np.array([0], "<i2").tobytes()) == b"\xff"
    assert af.alaw_encode(np.array([0], "<i2").tobytes()) == b"\xd5"
    assert np.frombuffer(af.ulaw_decode(b"\x80\x00\xff\x7f"), "<i2").tolist() == [32124, -32124, 0, 0]
    assert np.frombuffer(af.alaw_decode(b"\xaa\x2a\xd5\x55"), "<i2").tolist() == [32256, -32256, 8, -8]
    assert af.ulaw_encode(np.array([32767, -32768], "<i2").tobytes()) == b"\x80\x00"
    assert af.alaw_encode(np.array([32767, -32768], "<i2").tobytes()) == b"\xaa\x2a"


@pytest.mark.parametrize(
    ("encode", "decode"), [(af.ulaw_encode, af.ulaw_decode), (af.alaw_encode, af.alaw_decode)]
)
def test_g711_round_trip_error_is_within_half_a_step(encode, decode) -> None:  # type: ignore[no-untyped-def]
    x = np.frombuffer(ALL_INT16, "<i2").astype(np.int64)
    codes = encode(ALL_INT16)
    assert len(codes) == x.size
    y = np.frombuffer(decode(codes), "<i2").astype(np.int64)
    assert np.all(np.diff(y) >= 0)  # monotonic companding
    err = np.abs(y - x)
    assert np.all(err <= np.abs(x) / 16 + 136)  # ~6 % in the top segments, fixed near zero
    inner = np.abs(x) < 30000
    assert np.percentile(err[inner] / np.maximum(np.abs(x[inner]), 1), 99) < 0.04


@pytest.mark.parametrize(
    ("encode", "decode"), [(af.ulaw_encode, af.ulaw_decode), (af.alaw_encode, af.alaw_decode)]
)
def test_g711_codes_survive_decode_encode(encode, decode) -> None:  # type: ignore[no-untyped-def]
    codes = bytes(
        c for c in range(256) if not (encode is af.ulaw_encode and c == 0x7F)
    )  # μ-law has two zeros
    assert encode(decode(codes)) == codes


def test_g711_matches_the_stdlib_reference_when_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    assert af.ulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16, 2)
    assert af.alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16, 2)
    codes = bytes(range(256))
    assert af.ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert af.alaw_decode(codes) == audioop.alaw2lin(codes, 2)


# --- framing and levels ------------------------------------------------------------------------


def test_chunk_cuts_frames_and_keeps_every_byte() -> None:
    audio = sine(440, 1.01, 24000)
    frames = af.chunk(audio, 24000, 20)
    assert len(frames) == 51
    assert {len(f) for f in frames[:-1]} == {960}
    assert len(frames[-1]) == 480
    assert b"".join(frames) == audio
    assert af.chunk(b"", 24000, 20) == []


def test_chunk_rejects_empty_frames() -> None:
    with pytest.raises(ValueError, match="no samples"):
        af.chunk(b"\x00\x00", 8000, 0)


def test_duration_ms() -> None:
    assert af.duration_ms(b"\x00" * 48000, 24000) == 1000.0
    assert af.duration_ms(b"\x00" * 320, 16000) == 10.0


def test_rms_dbfs() -> None:
    square = np.tile(np.array([32767, -32768], "<i2"), 500).tobytes()
    assert af.rms_dbfs(square) == pytest.approx(0.0, abs=0.001)
    assert af.rms_dbfs(sine(1000, 1.0, 24000, amplitude=0.5)) == pytest.approx(
        -20 * math.log10(2) - 3.0103, abs=0.01
    )
    assert af.rms_dbfs(b"\x00\x00" * 100) == -math.inf
    assert af.rms_dbfs(b"") == -math.inf
