"""``AudioRoute``: the audio devices of a session as the control panel offers them.

The kernel's sound devices (a microphone and a speaker picker over ``sounddevice``'s list) or this
browser tab's microphone and speaker (for remote kernels), and the switch between the two. It owns
what it sets on the session (``mic_spec`` / ``speaker_spec``), the kernel's choice kept while the
browser is used, and the page's widgets shown in the panel's browser slot. Callbacks run on the
kernel's thread; it starts no thread.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

__all__ = ["DEFAULT_LABEL", "NONE_LABEL", "AudioRoute"]

log = logging.getLogger("voicelive_nb.widgets")

DEFAULT_LABEL = "system default"
NONE_LABEL = "none"
_LATER = '<span style="color:#777">device changes apply at the next start</span>'

#: Wraps a widget callback so that its failure is shown in the panel (see ``SessionPanel._guard``).
Guard = Callable[[str, Callable[..., Any]], Callable[..., Any]]


class AudioRoute:
    """The session's microphone and speaker: kernel device pickers, the kernel/browser route and
    the page's microphone and speaker widgets.

    ``browser`` is chosen by itself when the kernel has no audio device and both ``mic`` and
    ``speaker`` are ``"auto"``; the user can switch either way. A change while the session runs
    applies at the next start (the note says so)."""

    def __init__(self, session: Any, guard: Guard) -> None:
        self.session = session
        self._guard = guard
        self._device_choices: dict[str, dict[str, Any]] = {}
        self.mic_picker, self.speaker_picker, self.device_note = self._device_pickers()
        self.browser_mic: Any = None
        self.browser_speaker: Any = None
        self.browser_slot = W.VBox()
        self._kernel_specs: tuple[Any, Any] = (session.mic_spec, session.speaker_spec)
        self.route = self._audio_route()
        self.box = W.HBox(
            [self.route, self.mic_picker, self.speaker_picker, self.device_note],
            layout=W.Layout(align_items="center", flex_flow="row wrap"),
        )

    # ------------------------------------------------------------------ Start / Stop

    def start_capture(self) -> None:
        """After Start: open the page's microphone when the session uses it (the Start click is
        the user gesture the page needs)."""
        mic = self.browser_mic
        if mic is not None and self.session.mic_spec is mic:
            start = getattr(mic, "start_capture", None)
            if callable(start) and not mic.capturing:
                start()

    def stop_capture(self) -> None:
        """After Stop: release the page's microphone."""
        if self.browser_mic is not None and self.browser_mic.capturing:
            self.browser_mic.stop_capture()

    # ------------------------------------------------------------------ kernel devices

    def _device_pickers(self) -> tuple[Any, Any, Any]:
        ok, reason, devices = True, "", []
        try:
            from ..audio import device

            ok, reason = device.audio_available()
            if ok:
                devices = list(device.list_devices())
        except Exception as exc:  # no device module yet, no PortAudio, …: say so in the panel
            ok, reason = False, f"{type(exc).__name__}: {exc}"
            log.info("panel: audio devices unavailable: %s", reason)
        pickers = []
        for kind, attr in (("input", "mic_spec"), ("output", "speaker_spec")):
            usable = [d for d in devices if getattr(d, "inputs" if kind == "input" else "outputs", 0) > 0]
            choices: dict[str, Any] = {DEFAULT_LABEL: "auto", NONE_LABEL: False}
            for d in usable:
                choices[f"{d.index}: {d.name}"] = d.index
            current = getattr(self.session, attr)
            label = _label_for(current, choices, usable)
            picker = W.Dropdown(
                options=list(choices),
                value=label,
                description="microphone" if kind == "input" else "speaker",
                disabled=not ok,
                layout=W.Layout(width="340px"),
            )
            self._device_choices[attr] = choices
            picker.observe(
                self._guard(f"choosing the {kind} device", self._device_chosen(attr)), names="value"
            )
            pickers.append(picker)
        note = W.HTML(
            "" if ok else f'<span style="color:#777">audio devices unavailable: {html.escape(reason)}</span>'
        )
        return pickers[0], pickers[1], note

    def _device_chosen(self, attr: str) -> Callable[[Any], None]:
        def chosen(change: Any) -> None:
            setattr(self.session, attr, self._device_choices[attr][change["new"]])
            if self.session.running:
                self.device_note.value = _LATER

        return chosen

    # ------------------------------------------------------------------ browser audio

    def _audio_route(self) -> Any:
        """``kernel`` (sounddevice devices, the pickers) or ``browser`` (the page's microphone and
        speaker); hidden and fixed to ``kernel`` when browser audio cannot be loaded."""
        try:
            from ..audio import browser
        except Exception as exc:  # anywidget missing: only the kernel's devices
            log.info("panel: browser audio unavailable: %s", exc)
            return W.ToggleButtons(
                options=["kernel"], value="kernel", disabled=True, layout=W.Layout(display="none")
            )
        mic, speaker = self.session.mic_spec, self.session.speaker_spec
        already = isinstance(mic, browser.BrowserMicrophone) or isinstance(speaker, browser.BrowserSpeaker)
        auto = mic in (True, "auto") and speaker in (True, "auto") and self.mic_picker.disabled
        route = W.ToggleButtons(
            options=["kernel", "browser"],
            value="browser" if already or auto else "kernel",
            tooltips=["the kernel's sound devices", "this browser tab's microphone and speaker"],
            style={"button_width": "90px"},
            description="audio",
        )
        if already:
            self.browser_mic = mic if isinstance(mic, browser.BrowserMicrophone) else None
            self.browser_speaker = speaker if isinstance(speaker, browser.BrowserSpeaker) else None
            self._kernel_specs = ("auto", "auto")
            self._show_browser_audio()
        elif auto:
            self._use_browser_audio()
        route.observe(self._guard("choosing where audio goes", self._route_chosen), names="value")
        return route

    def _use_browser_audio(self) -> None:
        from ..audio.browser import BrowserMicrophone, BrowserSpeaker

        if self.browser_mic is None:
            self.browser_mic = BrowserMicrophone(sample_rate=self.session.config.input_sample_rate)
        if self.browser_speaker is None:
            self.browser_speaker = BrowserSpeaker()
        self._kernel_specs = (self.session.mic_spec, self.session.speaker_spec)
        self.session.mic_spec = self.browser_mic
        self.session.speaker_spec = self.browser_speaker
        self._show_browser_audio()

    def _show_browser_audio(self) -> None:
        shown = [w.widget for w in (self.browser_mic, self.browser_speaker) if w is not None]
        self.browser_slot.children = tuple(shown)

    def _route_chosen(self, change: Any) -> None:
        if change["new"] == "browser":
            self._use_browser_audio()
        else:
            self.session.mic_spec, self.session.speaker_spec = self._kernel_specs
            self.browser_slot.children = ()
        if self.session.running:
            self.device_note.value = _LATER


def _label_for(spec: Any, choices: dict[str, Any], devices: list[Any]) -> str:
    """The picker label of a ``mic=`` / ``speaker=`` value (added to ``choices`` if new)."""
    if spec is True or spec == "auto":
        return DEFAULT_LABEL
    if spec is False or spec is None:
        return NONE_LABEL
    if isinstance(spec, int):
        for label, value in choices.items():
            if value == spec and label not in (DEFAULT_LABEL, NONE_LABEL):
                return label
        label = f"device {spec}"
    elif isinstance(spec, str):
        for d in devices:
            if d.name == spec:
                return f"{d.index}: {d.name}"
        label = spec
    else:
        label = _FRIENDLY.get(type(spec).__name__, f"custom ({type(spec).__name__})")
    choices[label] = spec
    return label


#: What a person calls the audio objects a ``mic=`` / ``speaker=`` can be.
_FRIENDLY = {
    "BrowserMicrophone": "this browser tab's microphone",
    "BrowserSpeaker": "this browser tab's speaker",
    "MicrophoneSource": "a microphone",
    "SpeakerSink": "a speaker",
    "WavSource": "a WAV file",
    "WavSink": "a WAV file",
    "ArraySource": "an array of samples",
    "BufferSink": "a memory buffer",
}
