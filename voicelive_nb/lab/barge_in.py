"""The barge-in lab: does the assistant stop for the user, and only for the user? (#17)

A scripted user talks over the assistant's replies in an echoing room
(:class:`~voicelive_nb.audio.memory.EchoRoom`: what the session's speaker plays comes back into
its microphone delayed, attenuated and dulled, as on a laptop without headphones). Each reply
gets a :class:`Cue`: a real interruption, a backchannel ("uh-huh", "okay"), a cough, a door
slam, or nothing at all, placed ``offset_ms`` after the reply began to play. The same script
runs under several :data:`CONDITIONS` (no echo cancellation, server echo cancellation,
client-reference echo cancellation, half-duplex), one session each, and every barge-in (a
speaker flush after ``speech_started``) is put down to its cause:

* **real** — speech of a scripted interruption (the only right reason to stop);
* **echo** — no scripted sound near it: the assistant heard itself;
* **backchannel** / **noise** — the user only acknowledged, or something went bang.

Metrics per condition (:class:`ConditionResult`): false barge-ins (echo, backchannel, noise),
missed interruptions (no ``speech_started`` near a scripted interruption), time from the
user's speech onset to the speaker going silent (at the callback: the sink's flush, on the
microphone's sample clock), truncate error (``audio_end_ms`` sent in
``conversation.item.truncate`` minus what the speaker truly played of that item), and the reply
audio lost to false barge-ins (received but never played).

Everything runs on the microphone's sample clock, so ``pace="fast"`` runs as fast as the
machine allows and still measures in audio time. In fast pace the microphone may run ahead of
the network; the onset-to-silence time then includes that backlog. ``pace="realtime"`` paces
the microphone like a real one.

With the emulator, "server" echo cancellation is the emulator's canceller (a delay estimate,
the Speex adaptive filter and a residual-echo suppressor: ``emulator/enhance.py``) fed with the
audio it sent (as if the client played it the moment it arrived) and "client" the same
canceller fed with the reference channel this client sends; "none" is the emulator without
its canceller. Replies are scored from the first word by default: the canceller finds the
echo's delay within ~100 ms of far-end sound and suppresses what its filter has not learnt
yet, so no warm-up reply is needed (``warmup_replies`` still plays unscored ones first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..audio.memory import EchoRoom, RoomSpeaker
from ..errors import ConfigError
from ..protocol.config import EchoCancellation, SessionConfig
from ..session import Session
from .inputs import optional_pandas
from .replay import run_sync

__all__ = [
    "CONDITIONS",
    "CUE_KINDS",
    "BargeIn",
    "BargeInResult",
    "Condition",
    "ConditionResult",
    "Cue",
    "FlushRecord",
    "HalfDuplexMic",
    "LabSpeaker",
    "ScriptedUser",
    "barge_in_lab",
    "barge_in_lab_async",
    "cue_audio",
    "default_script",
    "no_speech_script",
    "run_condition",
]

RATE = 24000
CueKind = Literal["interrupt", "backchannel", "cough", "door", "none"]
CUE_KINDS: tuple[str, ...] = ("interrupt", "backchannel", "cough", "door", "none")
_CAUSE = {"interrupt": "real", "backchannel": "backchannel", "cough": "noise", "door": "noise"}
#: A speech_started this long before a sound's onset, or after its end, is not put down to it.
#: The service reports ``audio_start_ms`` with its ``prefix_padding_ms`` (300 ms by default)
#: taken off, so a start up to that much before the onset, and some, is the user's.
MATCH_BEFORE_MS = 500
MATCH_AFTER_MS = 600

#: What the assistant says (the emulator's scripted replies): a few seconds each.
REPLY_TEXTS = (
    "the weather in seattle is cloudy with a chance of rain later this afternoon",
    "tomorrow it will be sunny and warm, a good day for a walk in the park",
    "your meeting with the design team moved to three o'clock in the small room",
    "the train to portland leaves at ten past nine from platform four",
)


@dataclass(frozen=True)
class Cue:
    """What the scripted user does during one reply: ``kind`` at ``offset_ms`` into it."""

    kind: CueKind = "none"
    offset_ms: float = 900.0
    text: str | None = None
    """The words for ``interrupt``/``backchannel`` (a default phrase when ``None``)."""
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in CUE_KINDS:
            raise ConfigError("kind", self.kind, ", ".join(repr(k) for k in CUE_KINDS))
        if not 0 <= self.offset_ms <= 60000:
            raise ConfigError("offset_ms", self.offset_ms, "0 to 60000 milliseconds into the reply")
        if not -60 <= self.gain_db <= 20:
            raise ConfigError("gain_db", self.gain_db, "-60 to 20 dB")

    @property
    def real(self) -> bool:
        """Whether the assistant should stop for it."""
        return self.kind == "interrupt"


@dataclass(frozen=True)
class Condition:
    """One way of dealing with the echo."""

    name: str
    echo_cancellation: Literal["none", "server", "client"] = "none"
    half_duplex: bool = False
    """Mute the microphone while the assistant plays (and ``hangover_ms`` after)."""
    hangover_ms: float = 150.0
    description: str = ""

    def config(self, base: SessionConfig) -> SessionConfig:
        """``base`` with this condition's echo cancellation."""
        if self.echo_cancellation == "client":
            return base.with_client_echo_reference()
        if self.echo_cancellation == "server":
            return base.replace(
                input_audio_echo_cancellation=EchoCancellation(type="server_echo_cancellation")
            )
        return base.replace(input_audio_echo_cancellation=None)


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("no_ec", "none", description="no echo cancellation (the emulator without its canceller)"),
        Condition(
            "server_ec",
            "server",
            description="server echo cancellation (emulator's canceller, its own reference)",
        ),
        Condition(
            "client_ref_ec",
            "client",
            description="client-reference echo cancellation (channel 1: what played)",
        ),
        Condition(
            "half_duplex",
            "none",
            half_duplex=True,
            description="no echo cancellation, mic muted while playing",
        ),
    )
}


def default_script(replies: int = 8, offset_ms: float = 900.0) -> list[Cue]:
    """A mixed script: interruptions, backchannels, a cough, a door slam and silent replies, in turn."""
    cycle: list[Cue] = [
        Cue("none"),
        Cue("interrupt", offset_ms, "wait, stop, what about tomorrow"),
        Cue("backchannel", offset_ms, "uh-huh"),
        Cue("cough", offset_ms),
        Cue("interrupt", offset_ms + 400, "no no, I meant the other one"),
        Cue("backchannel", offset_ms, "okay"),
        Cue("door", offset_ms),
        Cue("none"),
    ]
    return [cycle[i % len(cycle)] for i in range(replies)]


def no_speech_script(replies: int = 20) -> list[Cue]:
    """``replies`` replies with no user sound at all (every barge-in is a false one)."""
    return [Cue("none") for _ in range(replies)]


# --- the scripted user -------------------------------------------------------------------------------


def _burst(n: int, seed: int, decay_ms: float, lowpass: int, level: float) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n + lowpass)
    x = np.convolve(x, np.ones(lowpass) / lowpass, mode="valid")[:n]
    env = np.exp(-np.arange(n) / (RATE * decay_ms / 1000))
    env[: RATE // 500] *= np.linspace(0, 1, RATE // 500)  # 2 ms attack, no click
    y: npt.NDArray[np.float64] = x * env
    return np.asarray(level * y / (np.max(np.abs(y)) + 1e-9), dtype=np.float64)


def cue_audio(cue: Cue, sample_rate: int = RATE, seed: int = 0) -> npt.NDArray[np.int16]:
    """The sound of ``cue`` (empty for ``none``): eSpeak speech, or a synthetic cough/door slam."""
    if cue.kind == "none":
        return np.zeros(0, dtype=np.int16)
    if cue.kind in ("interrupt", "backchannel"):
        from ..speech.tts import synthesize

        default = "wait, stop, I have a question" if cue.kind == "interrupt" else "uh-huh"
        pcm = synthesize(cue.text or default, sample_rate).pcm16
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    elif cue.kind == "cough":  # two bursts of breathy noise, 60 and 90 ms decay
        a = _burst(RATE * 250 // 1000, seed, 60, 6, 0.5)
        b = _burst(RATE * 300 // 1000, seed + 1, 90, 6, 0.4)
        x = np.concatenate([a, np.zeros(RATE // 12), b])
    else:  # door slam: a dull thump and a crack, 120 ms decay
        thump = _burst(RATE * 400 // 1000, seed, 120, 24, 0.8)
        crack = _burst(RATE * 400 // 1000, seed + 7, 30, 1, 0.5)
        x = thump + crack
    if sample_rate != RATE and cue.kind in ("cough", "door"):
        from ..audio.format import resample

        raw = np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2").tobytes()
        x = np.frombuffer(resample(raw, RATE, sample_rate), dtype="<i2").astype(np.float64) / 32768.0
    x = x * 10 ** (cue.gain_db / 20)
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def _audible(x: npt.NDArray[np.int16], level: int = 300) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > level)
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)


@dataclass
class Placed:
    """A cue's sound placed on the microphone timeline (samples)."""

    reply: int
    cue: Cue
    item_id: str
    start: int
    """Where the audio begins; ``onset``/``end``: where it is audible."""
    onset: int
    end: int
    audio: npt.NDArray[np.int16] = field(repr=False)


class ScriptedUser:
    """The user's side of the room (an :class:`~voicelive_nb.audio.base.AudioSource`).

    :meth:`cue_next_reply` arms a sound; it is placed ``offset_ms`` after the next reply item
    begins to play in the room (``room.speaker.started_at``), so "800 ms into the reply" is
    exact on the microphone's clock whatever the network does. Silence otherwise.
    """

    def __init__(self, *, pace: Literal["fast", "realtime"] = "fast", speed: float = 1.0) -> None:
        if pace not in ("fast", "realtime"):
            raise ConfigError("pace", pace, "'fast' or 'realtime'")
        if not 0.1 <= speed <= 100:
            raise ConfigError("speed", speed, "0.1 to 100 (times real time, with pace='realtime')")
        self.pace = pace
        self.speed = speed
        self.room: EchoRoom | None = None
        self._armed: list[tuple[int, Cue, npt.NDArray[np.int16]]] = []
        self._known: set[str] = set()
        self.placed: list[Placed] = []
        self._closed = False

    def cue_next_reply(self, reply: int, cue: Cue, audio: npt.NDArray[np.int16]) -> None:
        if cue.kind != "none":
            self._armed.append((reply, cue, audio))

    @property
    def pending(self) -> bool:
        """A cue armed and not placed yet."""
        return bool(self._armed)

    def _place_new_items(self, now: int, rate: int) -> None:
        room = self.room
        if room is None:
            return
        for item, at in list(room.speaker.started_at.items()):
            if item in self._known:
                continue
            self._known.add(item)
            if self._armed:
                reply, cue, audio = self._armed.pop(0)
                start = max(at + round(cue.offset_ms * rate / 1000), now)
                on, off = _audible(audio)
                self.placed.append(Placed(reply, cue, item, start, start + on, start + off, audio))

    def _mix(self, now: int, n: int) -> npt.NDArray[np.int16]:
        out = np.zeros(n, dtype=np.int32)
        for p in self.placed:
            lo, hi = max(now, p.start), min(now + n, p.start + len(p.audio))
            if lo < hi:
                out[lo - now : hi - now] += p.audio[lo - p.start : hi - p.start]
        return np.clip(out, -32768, 32767).astype(np.int16)

    async def _frames(self, sample_rate: int, frame_ms: int) -> AsyncIterator[bytes]:
        n = sample_rate * frame_ms // 1000
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        now = 0
        while not self._closed:
            self._place_new_items(now, sample_rate)
            frame = self._mix(now, n)
            now += n
            if self.pace == "realtime":
                delay = t0 + now / (sample_rate * self.speed) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            yield frame.astype("<i2").tobytes()

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        if sample_rate <= 0 or frame_ms <= 0:
            raise ConfigError("frame_ms", frame_ms, "a positive frame at a positive rate")
        return self._frames(sample_rate, frame_ms)

    async def aclose(self) -> None:
        self._closed = True


@dataclass(frozen=True)
class FlushRecord:
    """One flush of the room's speaker (a barge-in as the client carried it out)."""

    at: int
    """The microphone sample at which the speaker went silent (the callback's next frame)."""
    item_id: str | None
    played_ms: int
    dropped_ms: int


class LabSpeaker(RoomSpeaker):
    """The room's speaker, also keeping when each flush happened and how much each item received."""

    def __init__(self, room: EchoRoom) -> None:
        super().__init__(room)
        self.flush_log: list[FlushRecord] = []
        self.received: dict[str, int] = {}
        """Item id -> samples received (at the room's rate)."""

    def write(self, item_id: str, pcm16: bytes) -> None:
        super().write(item_id, pcm16)
        rate = self._room.sample_rate or self.sample_rate or RATE
        out_rate = self.sample_rate or rate
        self.received[item_id] = self.received.get(item_id, 0) + len(pcm16) // 2 * rate // out_rate

    def clear(self) -> None:
        item = self._tracker.current_item if self._tracker is not None else None
        played = self.played_ms(item) if item is not None else 0
        self.flush_log.append(FlushRecord(self._room.samples, item, played, self.queued_ms()))
        super().clear()


class HalfDuplexMic:
    """The room's microphone muted while the speaker plays (and ``hangover_ms`` after it stopped):
    the walkie-talkie answer to echo, which also cannot hear a real interruption."""

    def __init__(self, room: EchoRoom, hangover_ms: float = 150.0) -> None:
        self.room = room
        self.hangover_ms = hangover_ms
        self.muted_frames = 0

    async def _frames(self, sample_rate: int, frame_ms: int) -> AsyncIterator[bytes]:
        hang = 0
        hang_frames = max(1, round(self.hangover_ms / frame_ms))
        async for frame in self.room.frames(sample_rate, frame_ms):
            playing = self.room.speaker.queued_ms() > 0 or (
                len(self.room.played) >= len(frame) and any(self.room.played[-len(frame) :])
            )
            hang = hang_frames if playing else max(0, hang - 1)
            if playing or hang:
                self.muted_frames += 1
                yield bytes(len(frame))
            else:
                yield frame

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        return self._frames(sample_rate, frame_ms)

    async def aclose(self) -> None:
        await self.room.aclose()


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BargeIn:
    """One ``speech_started``, what caused it, and the flush it led to (if the speaker was playing)."""

    start_ms: int
    """``audio_start_ms``: where the service heard speech begin (microphone timeline)."""
    cause: str
    """``real``, ``echo``, ``backchannel`` or ``noise``."""
    reply: int | None
    flush: FlushRecord | None


@dataclass
class ConditionResult:
    """One condition's run of the script, with the raw lanes for the figure."""

    condition: Condition
    script: list[Cue]
    rate: int
    barge_ins: list[BargeIn]
    placed: list[Placed]
    flushes: list[FlushRecord]
    truncations: list[dict[str, Any]]
    played_ms_by_item: dict[str, int]
    received_ms_by_item: dict[str, int]
    vad: list[tuple[int, int | None]]
    """(start_ms, end_ms) of the service's speech segments."""
    scored_from: int = 0
    """The microphone sample the scored script began at (after the warm-up replies)."""
    played: bytes = field(repr=False, default=b"")
    heard: bytes = field(repr=False, default=b"")
    reply_starts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def false_barge_ins(self) -> list[BargeIn]:
        """Flushes not caused by a real interruption (echo, backchannel, noise)."""
        return [b for b in self.barge_ins if b.flush is not None and b.cause != "real"]

    def false_by_cause(self) -> dict[str, int]:
        out = {"echo": 0, "backchannel": 0, "noise": 0}
        for b in self.false_barge_ins:
            out[b.cause] = out.get(b.cause, 0) + 1
        return out

    @property
    def interruptions(self) -> list[Placed]:
        return [p for p in self.placed if p.cue.real]

    def detected(self, p: Placed) -> BargeIn | None:
        """The first ``speech_started`` put down to interruption ``p``."""
        for b in self.barge_ins:
            if b.cause == "real" and b.reply == p.reply:
                return b
        return None

    @property
    def missed(self) -> list[Placed]:
        """Scripted interruptions the service never heard as speech."""
        return [p for p in self.interruptions if self.detected(p) is None]

    def stop_latencies_ms(self) -> list[float]:
        """Per detected interruption that flushed the speaker: user's speech onset -> speaker silent."""
        out = []
        for p in self.interruptions:
            b = self.detected(p)
            if b is not None and b.flush is not None:
                out.append((b.flush.at - p.onset) * 1000 / self.rate)
        return out

    def truncate_errors_ms(self) -> list[int]:
        """``audio_end_ms`` sent minus what the speaker truly played of that item (0: exact)."""
        return [
            int(t["audio_end_ms"]) - self.played_ms_by_item.get(t["item_id"], 0)
            for t in self.truncations
            if t.get("item_id") is not None
        ]

    def lost_ms(self) -> int:
        """Reply audio received but never played, in items a false barge-in cut."""
        items = {b.flush.item_id for b in self.false_barge_ins if b.flush is not None and b.flush.item_id}
        return sum(
            max(0, self.received_ms_by_item.get(i, 0) - self.played_ms_by_item.get(i, 0)) for i in items
        )

    def row(self) -> dict[str, Any]:
        lat = self.stop_latencies_ms()
        errs = self.truncate_errors_ms()
        causes = self.false_by_cause()
        return {
            "condition": self.condition.name,
            "replies": len(self.script),
            "interruptions": len(self.interruptions),
            "false_barge_ins": len(self.false_barge_ins),
            "false_echo": causes["echo"],
            "false_backchannel": causes["backchannel"],
            "false_noise": causes["noise"],
            "missed_barge_ins": len(self.missed),
            "stop_ms_median": float(np.median(lat)) if lat else None,
            "stop_ms_max": max(lat) if lat else None,
            "truncate_error_ms_max": max((abs(e) for e in errs), default=None),
            "lost_reply_ms": self.lost_ms(),
            "error": self.error,
        }


@dataclass
class BargeInResult:
    """Every condition's result; :meth:`table` side by side, :meth:`figure` one per condition."""

    results: dict[str, ConditionResult]

    def rows(self) -> list[dict[str, Any]]:
        return [r.row() for r in self.results.values()]

    def table(self) -> Any:
        """A DataFrame (pandas installed) or the list of rows."""
        pd = optional_pandas()
        rows = self.rows()
        return pd.DataFrame(rows).set_index("condition") if pd is not None else rows

    def text(self) -> str:
        """The table as fixed-width text (the CLI prints it)."""
        rows = self.rows()
        if not rows:
            return "(no conditions)"
        cols = [c for c in rows[0] if c != "error"]
        cells = [[_fmt(r[c]) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        lines += [f"{r['condition']}: {r['error']}" for r in rows if r["error"]]
        return "\n".join(lines)

    def figure(self, condition: str) -> Any:
        from .barge_in_figure import timeline_figure

        return timeline_figure(self.results[condition])

    def figures(self) -> dict[str, Any]:
        return {name: self.figure(name) for name in self.results}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.0f}"
    return str(v)


# --- running ---------------------------------------------------------------------------------------


def _cause(start: int, placed: Sequence[Placed]) -> tuple[str, int | None]:
    """What a ``speech_started`` at sample ``start`` is put down to (the nearest scripted sound)."""
    best: tuple[str, int | None] = ("echo", None)
    best_gap: float = float("inf")
    before, after = MATCH_BEFORE_MS * RATE // 1000, MATCH_AFTER_MS * RATE // 1000
    for p in placed:
        if p.onset - before <= start <= p.end + after:
            gap = abs(start - p.onset)
            if gap < best_gap:
                best, best_gap = (_CAUSE[p.cue.kind], p.reply), gap
    return best


def classify(
    starts: Sequence[int], flushes: Sequence[FlushRecord], placed: Sequence[Placed], rate: int
) -> list[BargeIn]:
    """Pair each ``speech_started`` (ms) with the flush it caused (the first flush at or after it,
    before the next one) and put it down to a cause."""
    out: list[BargeIn] = []
    pending = sorted(flushes, key=lambda f: f.at)
    ordered = sorted(starts)
    for k, ms in enumerate(ordered):
        s = ms * rate // 1000
        nxt = ordered[k + 1] * rate // 1000 if k + 1 < len(ordered) else None
        flush = next((f for f in pending if f.at >= s and (nxt is None or f.at < nxt)), None)
        if flush is not None:
            pending.remove(flush)
        cause, reply = _cause(s * RATE // rate, placed)
        out.append(BargeIn(ms, cause, reply, flush))
    return out


async def run_condition(
    condition: Condition,
    script: Sequence[Cue],
    *,
    base: SessionConfig | None = None,
    delay_ms: float = 50.0,
    gain_db: float = -12.0,
    pace: Literal["fast", "realtime"] = "fast",
    speed: float = 1.0,
    warmup_replies: int = 0,
    reference_shift_ms: float = 0.0,
    session_options: Mapping[str, Any] | None = None,
    on_reply: Callable[[], None] | None = None,
    timeout_s: float = 60.0,
) -> ConditionResult:
    """Run ``script`` under ``condition`` in one session (the emulator unless ``session_options``
    say otherwise) through an echoing room; the raw result (see :class:`ConditionResult`).

    ``pace="realtime"`` paces the microphone like a real one, ``speed`` times faster (the
    onset-to-silence time is then in microphone time: wall-clock delays count ``speed`` times);
    ``pace="fast"`` does not wait at all (the microphone may run seconds ahead of the service,
    and that backlog is in the onset-to-silence time; the other metrics do not depend on it).

    ``warmup_replies`` replies are played first and not scored (no cue, their barge-ins left
    out), for a canceller that needs far-end audio to converge before it is judged; the
    default ``0`` scores from the first word (the emulator's canceller needs no warm-up).
    ``reference_shift_ms`` moves the client reference channel later (or earlier) than what
    really played, to see what a misaligned reference costs."""
    if not isinstance(warmup_replies, int) or not 0 <= warmup_replies <= 10:
        raise ConfigError("warmup_replies", warmup_replies, "a whole number from 0 to 10")
    base = base or SessionConfig.server_vad(create_response=False)
    config = condition.config(base)
    user = ScriptedUser(pace=pace, speed=speed)
    replies_s = sum(2.0 + c.offset_ms / 1000 for c in script) + 8 * len(script)
    room = EchoRoom(
        user,
        delay_ms=delay_ms,
        gain_db=gain_db,
        reference_shift_ms=reference_shift_ms,
        keep_s=max(120.0, replies_s),
    )
    room.speaker = LabSpeaker(room)
    user.room = room
    source: Any = HalfDuplexMic(room, condition.hangover_ms) if condition.half_duplex else room
    options: dict[str, Any] = {"emulator": True, "dotenv": False}
    options.update(session_options or {})
    if options.get("emulator"):
        count = len(script) + warmup_replies
        emu: dict[str, Any] = {
            "pace": "fast",
            "transcription": False,
            "replies": [REPLY_TEXTS[i % len(REPLY_TEXTS)] for i in range(count)],
        }
        emu.update(options.pop("emulator_options", {}) or {})
        options["emulator_options"] = emu
    starts: list[int] = []
    vad: list[tuple[int, int | None]] = []
    truncations: list[dict[str, Any]] = []
    error: str | None = None
    scored_from = 0

    def started(e: Any) -> None:
        starts.append(int(e.audio_start_ms))
        vad.append((int(e.audio_start_ms), None))

    def stopped(e: Any) -> None:
        if vad and vad[-1][1] is None:
            vad[-1] = (vad[-1][0], int(e.audio_end_ms))

    clips = [cue_audio(c, RATE, seed=i) for i, c in enumerate(script)]
    try:
        async with Session(config, source=source, sink=room.speaker, **options) as s:
            s.on("input_audio_buffer.speech_started", started)
            s.on("input_audio_buffer.speech_stopped", stopped)
            for _ in range(warmup_replies):
                await s.create_response()
                await s.wait_for("response.done", timeout=timeout_s)
                await _settle(room, user, timeout_s)
            scored_from = room.samples
            for i, cue in enumerate(script):
                user.cue_next_reply(i, cue, clips[i])
                await s.create_response()
                await s.wait_for("response.done", timeout=timeout_s)
                await _settle(room, user, timeout_s)
                if on_reply is not None:
                    on_reply()
            await s.update(instructions="You are a helpful assistant.")  # a barrier: every event is in
            truncations = list(s.truncations)
    except Exception as exc:  # reported in the table: one condition failing does not lose the others
        error = f"{type(exc).__name__}: {exc}"
    speaker = room.speaker
    assert isinstance(speaker, LabSpeaker)
    ms = 1000 / RATE
    first_ms = scored_from * 1000 // RATE
    starts = [t for t in starts if t >= first_ms]
    flushes = [f for f in speaker.flush_log if f.at >= scored_from]
    return ConditionResult(
        condition=condition,
        script=list(script),
        rate=RATE,
        barge_ins=classify(starts, flushes, user.placed, RATE),
        placed=list(user.placed),
        flushes=flushes,
        truncations=truncations,
        played_ms_by_item={i: speaker.played_ms(i) for i in speaker.received},
        received_ms_by_item={i: round(n * ms) for i, n in speaker.received.items()},
        vad=vad,
        scored_from=scored_from,
        played=bytes(room.played),
        heard=bytes(room.heard),
        reply_starts=dict(speaker.started_at),
        error=error,
    )


async def _settle(room: EchoRoom, user: ScriptedUser, timeout_s: float) -> None:
    """Until the reply has played out (or was flushed), its cue has sounded, and a second more."""
    await room.wait_until(lambda r: r.speaker.queued_ms() == 0, timeout_s)
    if user.pending:  # the reply never began to play (cut before it started): the cue is dropped
        user._armed.clear()
    last_end = max((p.start + len(p.audio) for p in user.placed), default=0)
    await room.wait_until(lambda r: r.samples >= last_end, timeout_s)
    await room.wait_samples(RATE, timeout_s)


async def barge_in_lab_async(
    script: Sequence[Cue] | None = None,
    conditions: Sequence[str | Condition] | None = None,
    *,
    progress: Any = False,
    **options: Any,
) -> BargeInResult:
    """Run ``script`` (default :func:`default_script`) under each condition, one after another."""
    script = list(script) if script is not None else default_script()
    chosen = [CONDITIONS[c] if isinstance(c, str) else c for c in (conditions or list(CONDITIONS))]
    bar = _progress(len(script) * len(chosen), progress)
    results: dict[str, ConditionResult] = {}
    try:
        for cond in chosen:
            tick = (lambda: bar.update(1)) if bar is not None else None
            results[cond.name] = await run_condition(cond, script, on_reply=tick, **options)
    finally:
        if bar is not None:
            bar.close()
    return BargeInResult(results)


def barge_in_lab(
    script: Sequence[Cue] | None = None,
    conditions: Sequence[str | Condition] | None = None,
    *,
    progress: Any = True,
    **options: Any,
) -> BargeInResult:
    """:func:`barge_in_lab_async` from synchronous code (a notebook cell, a script)."""
    return run_sync(barge_in_lab_async(script, conditions, progress=progress, **options))


def _progress(total: int, enabled: Any) -> Any:
    if enabled is False or enabled is None:
        return None
    if enabled is not True:
        return enabled  # a tqdm-like bar made by the caller
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm(total=total, desc="barge-in lab", unit="reply", leave=True)


def with_offsets(script: Sequence[Cue], offset_ms: float) -> list[Cue]:
    """The same script with every cue ``offset_ms`` into its reply."""
    return [replace(c, offset_ms=offset_ms) for c in script]
