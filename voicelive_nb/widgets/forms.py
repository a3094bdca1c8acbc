"""The session configuration as a form, generated from :func:`~voicelive_nb.protocol.config.field_specs`.

No field is laid out by hand: every :class:`~voicelive_nb.protocol.config.FieldSpec` becomes one
widget chosen by its ``kind`` (float → FloatSlider, int → IntSlider or a Combobox when literal values
such as ``"inf"`` are allowed, bool → Checkbox, choice → Dropdown, text → Textarea, str → Text or a
Combobox of suggestions, list → TagsInput, object → a JSON Textarea). Objects that have fields of
their own (``turn_detection``, ``voice``, noise reduction, …) become a group whose *selector* (its
required ``type``/``model`` dropdown, or an on/off dropdown) has ``(not set)`` and, for nullable
objects, ``off`` choices. Fields whose ``applies_to`` excludes the current discriminator value are
hidden, and switching the discriminator applies that type's ``type_defaults`` and drops fields that
no longer apply.

The form edits a *draft* (a wire dict). Each change is validated at once by building the new
:class:`SessionConfig` with ``with_changes``; a :class:`ConfigError` is shown in red beside the field
it names and the last valid configuration is kept (the draft keeps the bad value, so a change that
needs two edits, e.g. echo-cancellation ``reference_source=client`` with ``channels=2``, can pass
through an invalid step). Valid changes reach ``on_change(config)`` debounced (a
:class:`~voicelive_nb.widgets.debounce.Debouncer`): in a Jupyter kernel a widget callback runs on
the kernel's thread inside its running asyncio loop, so there the wait is ``loop.call_later`` on
that loop and ``on_change`` runs on the kernel's thread like any widget callback, no thread
started; only where the editing thread runs no loop (plain Python, headless tests) does a timer
thread (``voicelive-form-debounce``) wait and call it. :meth:`ConfigForm.set_config` updates the
widgets without calling ``on_change``.

One control is not generated: the *client echo reference* checkbox in the echo-cancellation
group sets exactly what :meth:`SessionConfig.with_client_echo_reference` sets (reference_source
client with 2 channels, which makes the session add the ``client_ec_reference:true`` URL flag and
stream stereo). The service fixes the echo reference for a connection: while a connection reports
the other one (:meth:`ConfigForm.set_effective`), the change is *held*: the note says it applies
at the next Start, ``on_change`` gets the configuration with the connection's echo cancellation
(so ``session.update`` never carries a change the service would refuse), and :meth:`ConfigForm.flush`
(the panel's Start) delivers the whole form, held change included.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

from ..errors import ConfigError
from ..protocol.config import UNSET, FieldSpec, SessionConfig, field_specs
from .debounce import Debouncer

__all__ = ["PRESETS", "SECTIONS", "ConfigForm", "redact", "widget_tree"]

log = logging.getLogger("voicelive_nb.widgets")

NOT_SET = "(not set)"
OFF = "off"
ON = "on"
REDACTED = "***"
#: Keys whose string values are never shown in a widget or an export (MCP authorization, ICE credentials).
SENSITIVE_KEYS = frozenset(
    {"authorization", "credential", "api_key", "api-key", "password", "token", "secret"}
)

#: Tab title → top-level fields shown there; everything else goes to the last tab.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Prompt & voice", ("instructions", "modalities", "voice")),
    ("Turn detection", ("turn_detection",)),
    (
        "Audio",
        (
            "input_audio_format",
            "output_audio_format",
            "input_audio_sampling_rate",
            "input_audio_noise_reduction",
            "input_audio_echo_cancellation",
            "output_audio_timestamp_types",
        ),
    ),
    ("Transcription", ("input_audio_transcription",)),
    ("Advanced", ()),
)
PRESETS = ("quickstart", "server_vad", "manual")
#: The group the *client echo reference* checkbox sits in.
ECHO_PATH = "input_audio_echo_cancellation"
_PRESET_PROMPT = "preset…"

_DESCRIPTION_WIDTH = "190px"
_WIDE = "470px"
_ERROR_STYLE = "color:#c62828"
_HINT_STYLE = "color:#777"
_OK_STYLE = "color:#2e7d32"
#: Top-level fields a preset leaves as they are when it does not set them itself (a preset is
#: about turn detection and audio; it must not wipe what the user wrote).
PRESET_KEEPS = ("instructions", "voice", "tools", "tool_choice")


# ----------------------------------------------------------------------------------------------
# helpers on wire dicts
# ----------------------------------------------------------------------------------------------


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _leaf(path: str) -> str:
    return path.rpartition(".")[2]


def _as_object(path: str, value: Any) -> Any:
    """A bare OpenAI voice name stands for ``{type: openai, name: ...}`` when edited field by field."""
    if path == "voice" and isinstance(value, str):
        return {"type": "openai", "name": value}
    return value


def _lookup(draft: Mapping[str, Any], path: str) -> Any:
    node: Any = draft
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping):
            return UNSET
        node = node.get(part, UNSET)
        if i < len(parts) - 1:
            node = _as_object(".".join(parts[: i + 1]), node)
    return node


def _assign(draft: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = draft
    for i, part in enumerate(parts[:-1]):
        child = _as_object(".".join(parts[: i + 1]), node.get(part))
        if not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    if value is UNSET:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _delta(
    old: Mapping[str, Any], new: Mapping[str, Any], objects: set[str], prefix: str = ""
) -> dict[str, Any]:
    """The ``with_changes`` mapping that turns wire dict ``old`` into ``new`` (``UNSET`` removes).

    Only modelled sub-objects (``objects``) are merged key by key; anything else is replaced whole.
    """
    out: dict[str, Any] = {}
    for key in old.keys() | new.keys():
        path = f"{prefix}.{key}" if prefix else key
        a, b = old.get(key, UNSET), new.get(key, UNSET)
        if same_value(a, b):
            continue
        if path in objects and isinstance(a, dict) and isinstance(b, dict):
            sub = _delta(a, b, objects, path)
            if sub:
                out[key] = sub
        else:
            out[key] = b
    return out


def same_value(a: Any, b: Any) -> bool:
    """JSON equality that does not confuse ``true`` with ``1``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _sensitive(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in SENSITIVE_KEYS


def redact(value: Any) -> Any:
    """A copy of a JSON value with the string values of sensitive keys replaced by ``***``."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _sensitive(k) and isinstance(v, str) and v else redact(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _unredact(new: Any, old: Any) -> Any:
    """Put back the hidden values where the user left ``***`` in place."""
    if isinstance(new, dict):
        out = {}
        for key, value in new.items():
            before = old.get(key, UNSET) if isinstance(old, Mapping) else UNSET
            if value == REDACTED and _sensitive(key) and isinstance(before, str):
                out[key] = before
            else:
                out[key] = _unredact(value, before)
        return out
    if isinstance(new, list):
        olds = list(old) if isinstance(old, (list, tuple)) else []
        return [_unredact(v, olds[i] if i < len(olds) else UNSET) for i, v in enumerate(new)]
    return new


def _secrets_in(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _sensitive(key) and isinstance(item, str) and len(item) >= 4:
                yield item
            else:
                yield from _secrets_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secrets_in(item)


def widget_tree(root: Any, extra: Iterable[Any] = ()) -> list[Any]:
    """Every widget reachable from ``root`` (and ``extra``) through ``children`` and widget-valued
    traits such as ``layout`` and ``style``; each once."""
    seen: dict[int, Any] = {}
    stack = [root, *extra]
    while stack:
        widget = stack.pop()
        if id(widget) in seen or not isinstance(widget, W.Widget):
            continue
        seen[id(widget)] = widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            if isinstance(value, W.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, W.Widget))
    return list(seen.values())


def _is_client(echo: Any) -> bool:
    """Whether an ``input_audio_echo_cancellation`` value (object or wire dict) takes the client's reference."""
    source = (
        echo.get("reference_source") if isinstance(echo, Mapping) else getattr(echo, "reference_source", None)
    )
    return source == "client"


def _set(widget: Any, name: str, value: Any) -> None:
    """Set a trait only when it changes (each set is a comm message)."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "[]"
    return str(value)


class _ParseError(ValueError):
    """The text in a widget is not a value of its kind (shown beside it; the draft is unchanged)."""


# ----------------------------------------------------------------------------------------------
# one widget per field kind
# ----------------------------------------------------------------------------------------------


class _Kit:
    """Layouts and styles shared by a form's widgets: one model each instead of one per widget
    (a Layout's state is ~1 KB; the form would otherwise open ~900 comms when displayed)."""

    def __init__(self) -> None:
        self._layouts: dict[str, Any] = {}
        self._styles: dict[type, Any] = {}

    def layout(self, **traits: str) -> Any:
        key = repr(sorted(traits.items()))
        if key not in self._layouts:
            self._layouts[key] = W.Layout(**traits)
        return self._layouts[key]

    def style(self, widget_class: Any) -> Any:
        style_class = widget_class.class_traits()["style"].klass
        if style_class not in self._styles:
            self._styles[style_class] = style_class(description_width=_DESCRIPTION_WIDTH)
        return self._styles[style_class]

    def kw(self, widget_class: Any, path: str, width: str = _WIDE) -> dict[str, Any]:
        return {
            "description": _leaf(path),
            "style": self.style(widget_class),
            "layout": self.layout(width=width),
        }

    def widgets(self) -> list[Any]:
        return [*self._layouts.values(), *self._styles.values()]


class _Field:
    """One row of the form: the input widget and a note beside it (the error in red, else the default)."""

    def __init__(self, kit: _Kit, path: str, spec: FieldSpec | None, widget: Any) -> None:
        self.path = path
        self.spec = spec
        self.widget = widget
        if spec is not None:
            widget.tooltip = f"{path}: {spec.doc}"
        self.note = W.HTML(layout=kit.layout(margin="0 0 0 8px"), style=kit.style(W.HTML))
        self.row = W.HBox([widget, self.note], layout=W.Layout(align_items="center"))

    def widgets(self) -> list[Any]:
        return [self.widget, self.note, self.row]

    def show(self, value: Any, default: Any) -> None:  # draft value → widget
        raise NotImplementedError

    def read(self, old: Any) -> Any:  # widget → draft value (UNSET removes); _ParseError
        raise NotImplementedError

    def hint_for(self, value: Any, default: Any) -> str:
        if value is UNSET and default is not UNSET:
            return f"default {_fmt(default)}"
        return ""

    def set_messages(self, hint: str, error: str, ok: str = "") -> None:
        if error:
            note = f'<span style="{_ERROR_STYLE}">{html.escape(error)}</span>'
        elif ok:
            note = f'<span style="{_OK_STYLE}">{html.escape(ok)}</span>'
        else:
            note = f'<span style="{_HINT_STYLE}">{html.escape(hint)}</span>' if hint else ""
        _set(self.note, "value", note)


def soft_range(spec: FieldSpec) -> tuple[float, float]:
    """The slider's range for a numeric field: the whole allowed range, except that millisecond
    fields stop at 2,000 ms (10,000 ms for those allowed past 10 s) so that a pixel is a few ms;
    larger values are typed into the box beside the slider."""
    lo = float(spec.minimum if spec.minimum is not None else 0.0)
    hi = float(spec.maximum if spec.maximum is not None else (1.0 if spec.kind == "float" else 100.0))
    if spec.path.endswith("_ms") and hi > 2000:
        hi = max(lo, 2000.0 if hi <= 10000 else 10000.0)
    return lo, hi


class _NumberField(_Field):
    """A number typed into an unbounded box (never clamped: an out-of-range value is refused
    beside the field with the allowed range, and nothing is sent), with a slider over
    :func:`soft_range` next to it for quick changes. ``widget`` is the box."""

    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        self.integer = spec.kind == "int"
        step = spec.step or (1 if self.integer else 0.01)
        self.decimals = 0 if self.integer else max(0, -math.floor(math.log10(step)))
        lo, hi = soft_range(spec)
        kw = kit.kw(W.FloatText, spec.path, "300px")
        if self.integer:
            widget = W.IntText(value=int(lo), step=int(step), **kw)
            self.slider = W.IntSlider(
                min=int(lo),
                max=int(hi),
                step=int(step),
                value=int(lo),
                readout=False,
                layout=kit.layout(width="200px"),
            )
        else:
            widget = W.FloatText(value=lo, step=step, **kw)
            self.slider = W.FloatSlider(
                min=lo, max=hi, step=step, value=lo, readout=False, layout=kit.layout(width="200px")
            )
        self._quiet = False
        super().__init__(kit, spec.path, spec, widget)
        self.slider.tooltip = f"{spec.path}: drag for {lo:g}–{hi:g}; type any value in {spec.allowed}"
        self.slider.observe(self._slid, names="value")
        self.row.children = (widget, self.slider, self.note)

    def widgets(self) -> list[Any]:
        return [*super().widgets(), self.slider]

    def _slid(self, change: Mapping[str, Any]) -> None:
        if self._quiet:
            return
        value = change["new"]
        self.widget.value = int(value) if self.integer else round(float(value), self.decimals)

    def _show_slider(self, value: float) -> None:
        self._quiet = True
        try:
            clamped = min(max(value, self.slider.min), self.slider.max)  # the box shows the real value
            _set(self.slider, "value", int(clamped) if self.integer else float(clamped))
        finally:
            self._quiet = False

    def show(self, value: Any, default: Any) -> None:
        shown = value if _number(value) else default if _number(default) else self.slider.min
        shown = int(shown) if self.integer else float(shown)
        _set(self.widget, "value", shown)
        self._show_slider(shown)

    def read(self, old: Any) -> Any:
        assert self.spec is not None
        raw = self.widget.value
        if raw is None or (isinstance(raw, float) and not math.isfinite(raw)):
            raise _ParseError(f"{self.path}: not a number; allowed: {self.spec.allowed}")
        value: int | float = int(raw) if self.integer else float(raw)
        self._show_slider(value)
        lo, hi = self.spec.minimum, self.spec.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _ParseError(
                f"{self.path} {value:g} is out of range, not sent; allowed: {self.spec.allowed}"
            )
        return value


class _IntTextField(_Field):
    """An integer that may also be a literal (``"inf"``): typed, so out-of-range values are possible."""

    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        widget = W.Combobox(
            options=[str(c) for c in spec.choices],
            ensure_option=False,
            continuous_update=False,
            placeholder=f"{spec.minimum:g}–{spec.maximum:g}" + "".join(f" or {c}" for c in spec.choices),
            **kit.kw(W.Combobox, spec.path),
        )
        super().__init__(kit, spec.path, spec, widget)

    def show(self, value: Any, default: Any) -> None:
        _set(self.widget, "value", "" if value is UNSET or value is None else str(value))

    def read(self, old: Any) -> Any:
        assert self.spec is not None
        text = self.widget.value.strip()
        if not text:
            return UNSET
        if text in self.spec.choices:
            return text
        try:
            return int(text)
        except ValueError:
            raise _ParseError(f"not a whole number: {text!r}; allowed: {self.spec.allowed}") from None


class _BoolField(_Field):
    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        widget = W.Checkbox(value=False, indent=True, **kit.kw(W.Checkbox, spec.path))
        super().__init__(kit, spec.path, spec, widget)

    def show(self, value: Any, default: Any) -> None:
        _set(self.widget, "value", value if isinstance(value, bool) else default is True)

    def read(self, old: Any) -> Any:
        return bool(self.widget.value)


class _DropdownField(_Field):
    """A dropdown over labels, each standing for a value (``UNSET``, ``None`` or a choice)."""

    def __init__(self, kit: _Kit, path: str, spec: FieldSpec | None, labels: list[tuple[str, Any]]) -> None:
        self.values = dict(labels)
        widget = W.Dropdown(options=[label for label, _ in labels], **kit.kw(W.Dropdown, path))
        super().__init__(kit, path, spec, widget)

    def label_of(self, value: Any) -> str:
        for label, item in self.values.items():
            if item is value or (not isinstance(item, type(UNSET)) and same_value(item, value)):
                return label
        return next(iter(self.values))

    def read(self, old: Any) -> Any:
        return self.values[self.widget.value]


class _ChoiceField(_DropdownField):
    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        labels: list[tuple[str, Any]] = []
        if not spec.required:
            labels.append((f"(default: {spec.default})" if spec.default is not UNSET else NOT_SET, UNSET))
        labels += [(str(c), c) for c in spec.choices]
        super().__init__(kit, spec.path, spec, labels)

    def show(self, value: Any, default: Any) -> None:
        _set(self.widget, "value", self.label_of(value))

    def hint_for(self, value: Any, default: Any) -> str:
        return ""


class _SelectorField(_DropdownField):
    """The selector of an object field: ``(not set)``, ``off`` (nullable objects), or its type/model."""

    def __init__(self, kit: _Kit, container: FieldSpec, spec: FieldSpec) -> None:
        labels: list[tuple[str, Any]] = [(NOT_SET, UNSET)]
        if container.nullable:
            labels.append((OFF, None))
        labels += [(str(c), c) for c in spec.choices]
        super().__init__(kit, spec.path, spec, labels)
        self.container = container.path
        self.widget.tooltip = f"{container.path}: {container.doc}; {spec.path}: {spec.doc}"

    def show_state(self, container_value: Any, discriminator: Any) -> None:
        if container_value is UNSET or container_value is None:
            label = self.label_of(container_value)
        else:
            label = self.label_of(discriminator)
        _set(self.widget, "value", label)


class _ModeField(_DropdownField):
    """On/off for an object field without a type selector (``animation``, ``avatar``)."""

    def __init__(self, kit: _Kit, container: FieldSpec) -> None:
        labels: list[tuple[str, Any]] = [(NOT_SET, UNSET)]
        if container.nullable:
            labels.append((OFF, None))
        labels.append((ON, ON))
        super().__init__(kit, container.path, None, labels)
        self.container = container.path
        self.widget.description = "enabled"
        self.widget.tooltip = f"{container.path}: {container.doc}"

    def show_state(self, container_value: Any) -> None:
        state = container_value if container_value is UNSET or container_value is None else ON
        _set(self.widget, "value", self.label_of(state))


class _TextField(_Field):
    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        widget = W.Textarea(
            rows=4,
            continuous_update=False,
            placeholder=spec.doc,
            **kit.kw(W.Textarea, spec.path, "640px"),
        )
        super().__init__(kit, spec.path, spec, widget)

    def show(self, value: Any, default: Any) -> None:
        _set(self.widget, "value", value if isinstance(value, str) else "")

    def read(self, old: Any) -> Any:
        assert self.spec is not None
        text = self.widget.value
        if text:
            return text
        # an empty instructions string is meaningful (it clears them); elsewhere empty means "not set"
        return "" if self.spec.default == "" and old is not UNSET else UNSET


class _StrField(_Field):
    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        kw = kit.kw(W.Text, spec.path)
        if spec.choices:
            widget = W.Combobox(
                options=[str(c) for c in spec.choices], ensure_option=False, continuous_update=False, **kw
            )
        else:
            widget = W.Text(continuous_update=False, **kw)
        widget.placeholder = spec.doc
        super().__init__(kit, spec.path, spec, widget)

    def show(self, value: Any, default: Any) -> None:
        if isinstance(value, str):
            text = value
        elif value is UNSET or value is None:
            text = ""
        else:  # e.g. tool_choice {type: function, name}
            text = json.dumps(redact(value))
        _set(self.widget, "value", text)

    def read(self, old: Any) -> Any:
        text = self.widget.value.strip()
        if not text:
            return UNSET
        if text.startswith("{"):
            try:
                return _unredact(json.loads(text), old)
            except json.JSONDecodeError as exc:
                raise _ParseError(f"invalid JSON: {exc}") from None
        return text


class _ListField(_Field):
    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        widget = W.TagsInput(
            value=[],
            allowed_tags=[str(c) for c in spec.choices],
            allow_duplicates=False,
            placeholder="add…",
            tooltip=spec.doc,
            layout=kit.layout(width="auto"),
            style=kit.style(W.TagsInput),
        )
        self.label = W.Label(
            _leaf(spec.path), layout=kit.layout(width=_DESCRIPTION_WIDTH), style=kit.style(W.Label)
        )
        super().__init__(kit, spec.path, spec, widget)
        self.row.children = (self.label, *self.row.children)

    def widgets(self) -> list[Any]:
        return [*super().widgets(), self.label]

    def show(self, value: Any, default: Any) -> None:
        _set(self.widget, "value", [str(v) for v in value] if isinstance(value, (list, tuple)) else [])

    def read(self, old: Any) -> Any:
        items = [str(v) for v in self.widget.value]
        return items if items else UNSET


class _JsonField(_Field):
    """A JSON value edited whole (tools, metadata, custom_speech, …); secrets shown as ``***``."""

    def __init__(self, kit: _Kit, spec: FieldSpec) -> None:
        widget = W.Textarea(
            rows=3,
            continuous_update=False,
            placeholder="JSON, e.g. " + ("[...]" if spec.path == "tools" else "{...}"),
            **kit.kw(W.Textarea, spec.path, "640px"),
        )
        super().__init__(kit, spec.path, spec, widget)

    def show(self, value: Any, default: Any) -> None:
        if value is UNSET:
            _set(self.widget, "value", "")
            return
        shown = redact(value)
        try:
            if json.loads(self.widget.value) == shown:
                return  # keep the user's own formatting
        except ValueError:
            pass
        _set(self.widget, "value", json.dumps(shown, indent=1))

    def read(self, old: Any) -> Any:
        text = self.widget.value.strip()
        if not text:
            return UNSET
        try:
            return _unredact(json.loads(text), old)
        except json.JSONDecodeError as exc:
            raise _ParseError(f"invalid JSON: {exc}") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field_for(kit: _Kit, spec: FieldSpec) -> _Field:
    kind = spec.kind
    if kind == "int" and spec.choices:
        return _IntTextField(kit, spec)
    if kind in ("float", "int") and spec.minimum is not None and spec.maximum is not None:
        return _NumberField(kit, spec)
    if kind == "bool":
        return _BoolField(kit, spec)
    if kind == "choice":
        return _ChoiceField(kit, spec)
    if kind == "text":
        return _TextField(kit, spec)
    if kind == "str":
        return _StrField(kit, spec)
    if kind == "list":
        return _ListField(kit, spec)
    return _JsonField(kit, spec)


# ----------------------------------------------------------------------------------------------
# the fields of a form and what they mean for a draft
# ----------------------------------------------------------------------------------------------


class _FieldTable:
    """The form's fields, laid out from the field specs, and the rules that read them over a draft.

    It owns the specs by path, the object fields that are groups (``containers``) with their
    selectors, the fields each discriminator switches, one :class:`_Field` per editable path, a
    box per group and the rows of each section tab. Over a draft (a wire dict) it says which
    fields apply and show, each field's default and where an error belongs. ``on_edit(path)`` is
    called when a field's widget changes."""

    def __init__(self, specs: list[FieldSpec], kit: _Kit, on_edit: Callable[[str], None]) -> None:
        self.specs: dict[str, FieldSpec] = {s.path: s for s in specs}
        self.containers: set[str] = {
            s.path
            for s in specs
            if s.kind == "object" and any(o.path.startswith(s.path + ".") for o in specs)
        }
        self.discriminated: dict[str, list[FieldSpec]] = {}
        for s in specs:
            if s.discriminator:
                self.discriminated.setdefault(s.discriminator, []).append(s)
        self.selector_of: dict[str, str] = {}
        self.fields: dict[str, _Field] = {}
        self.groups: dict[str, W.VBox] = {}
        self._kit = kit
        self._on_edit = on_edit
        self.sections = self._build(specs)

    # ------------------------------------------------------------------ building

    def _build(self, specs: list[FieldSpec]) -> dict[str, list[Any]]:
        """Each spec's row into its group or its section (title → rows)."""
        sections: dict[str, list[Any]] = {title: [] for title, _ in SECTIONS}
        section_of = {top: title for title, tops in SECTIONS for top in tops}
        members: dict[str, list[Any]] = {}  # container path → its child rows / groups
        for spec in specs:
            path = spec.path
            parent = _parent(path)
            if path in self.containers:
                members[path] = []
                entry: Any = self._group(spec, specs)
            elif path in self.selector_of.values():
                continue  # the group's own selector row
            else:
                field = _field_for(self._kit, spec)
                self._add(field)
                entry = field.row
            if parent and parent in members:
                members[parent].append(entry)
            else:
                sections[section_of.get(path.split(".")[0], SECTIONS[-1][0])].append(entry)
        for path, box in self.groups.items():
            box.children = (*box.children, *members[path])
        return sections

    def _group(self, spec: FieldSpec, specs: list[FieldSpec]) -> Any:
        """The box of an object field: its title and its selector (type/model, else on/off)."""
        path = spec.path
        selector = next(
            (s for s in specs if _parent(s.path) == path and s.kind == "choice" and s.required and s.choices),
            None,
        )
        head: _Field = (
            _SelectorField(self._kit, spec, selector) if selector is not None else _ModeField(self._kit, spec)
        )
        if selector is not None:
            self.selector_of[path] = selector.path
        self._add(head)
        title = W.HTML(
            f'<b>{html.escape(path)}</b> <span style="{_HINT_STYLE}">{html.escape(spec.doc)}</span>',
            layout=self._kit.layout(),
            style=self._kit.style(W.HTML),
        )
        box = W.VBox(
            [title, head.row],
            layout=W.Layout(border="1px solid #ddd", padding="4px", margin="4px 0"),
        )
        self.groups[path] = box
        return box

    def _add(self, field: _Field) -> None:
        self.fields[field.path] = field
        field.widget.observe(lambda change, path=field.path: self._on_edit(path), names="value")

    # ------------------------------------------------------------------ reading a draft

    def effective(self, draft: Mapping[str, Any], path: str) -> Any:
        """The draft's value at ``path``, else the field's default."""
        value = _lookup(draft, path)
        if value is UNSET or value is None:
            spec = self.specs.get(path)
            return spec.default if spec is not None else UNSET
        return value

    def applies(self, draft: Mapping[str, Any], spec: FieldSpec) -> bool:
        if spec.applies_to and spec.discriminator:
            current = self.effective(draft, spec.discriminator)
            if isinstance(current, str) and current not in spec.applies_to:
                return False
        return True

    def visible(self, draft: Mapping[str, Any], path: str) -> bool:
        spec = self.specs.get(path)
        if spec is not None and not self.applies(draft, spec):
            return False
        parent = _parent(path)
        if not parent or parent not in self.containers:
            return True
        if not self.visible(draft, parent):
            return False
        if self.selector_of.get(parent) == path:
            return True  # a group's selector shows while the group does
        return isinstance(_as_object(parent, _lookup(draft, parent)), dict)

    def default(self, draft: Mapping[str, Any], spec: FieldSpec) -> Any:
        """The field's default, that of the draft's type where the type has its own."""
        if spec.type_defaults and spec.discriminator:
            current = self.effective(draft, spec.discriminator)
            if current in spec.type_defaults:
                return spec.type_defaults[current]
        return spec.default

    def locate(self, draft: Mapping[str, Any], field: str, changed: str | None) -> str:
        """The shown field an error about ``field`` belongs beside (else the one just changed)."""
        path = re.sub(r"\[\d+\]", "", field)
        while path:
            target = self.selector_of.get(path, path)
            if target in self.fields and self.visible(draft, target):
                return target
            path = _parent(path)
        return changed or next(iter(self.fields))


# ----------------------------------------------------------------------------------------------
# the client echo reference
# ----------------------------------------------------------------------------------------------


class _EchoReference:
    """The form's *client echo reference*: its checkbox and note, what the live connection uses
    (``live``; ``None``: no connection known), the echo cancellation last handed to ``on_change``
    (``sent``) and a change held for the next Start (``held``).

    The service fixes the echo reference for a connection, so a change to the other reference is
    held: ``on_change`` keeps getting the connection's echo cancellation until a Start (see the
    module doc). The form calls it under its own lock and redraws when told to."""

    def __init__(self, config: SessionConfig) -> None:
        self.live: bool | None = None
        self.sent: Any = config.input_audio_echo_cancellation
        self.held: Any = None
        self.box: Any = None
        self.note: Any = None

    def build(self, kit: _Kit, group: Any, on_toggle: Callable[[Mapping[str, Any]], None]) -> None:
        """Add the checkbox row as the first row of the echo-cancellation ``group``."""
        kw = {**kit.kw(W.Checkbox, "client_echo_reference"), "description": "client echo reference"}
        self.box = W.Checkbox(value=False, indent=True, **kw)
        self.box.tooltip = (
            "the client sends what its speaker played as channel 1 (reference_source client, "
            "channels 2, URL feature client_ec_reference:true); fixed for a connection"
        )
        self.note = W.HTML(layout=kit.layout(margin="0 0 0 8px"), style=kit.style(W.HTML))
        self.box.observe(on_toggle, names="value")
        row = W.HBox([self.box, self.note], layout=W.Layout(align_items="center"))
        group.children = (group.children[0], row, *group.children[1:])

    def shown(self, config: SessionConfig) -> SessionConfig:
        """What :meth:`ConfigForm.set_config` shows: ``config``, with a held change kept over it."""
        if self.held is not None and config.client_echo_reference != _is_client(self.held):
            return config.replace(input_audio_echo_cancellation=self.held)  # still for the next Start
        self.held = None
        self.sent = config.input_audio_echo_cancellation
        return config

    def hold(self, config: SessionConfig) -> tuple[SessionConfig, bool]:
        """What ``on_change`` may get now, and whether that holds a change back: the connection's
        echo cancellation while ``config`` asks for the other reference, else ``config``."""
        live = self.live
        if live is None or config.client_echo_reference == live:
            self.held = None
            self.sent = config.input_audio_echo_cancellation
            return config, False
        self.held = config.input_audio_echo_cancellation
        keep = self.sent
        if _is_client(keep) != live:
            keep = config.with_client_echo_reference(live).input_audio_echo_cancellation
        return config.replace(input_audio_echo_cancellation=keep), True

    def heard(self, echo: Any) -> bool:
        """The service reported the connection's echo cancellation; True if that took the held change."""
        self.live = _is_client(echo)
        if self.held is not None and _is_client(self.held) == self.live:
            self.held = None  # a new connection took it
            return True
        return False

    def release(self) -> bool:
        """A Start: the next connection takes what the form shows. True if a change was held."""
        if self.held is None:
            return False
        self.held = None
        self.live = None
        return True

    @staticmethod
    def held_text(live: bool) -> str:
        return (
            f"client echo reference {'off' if live else 'on'} applies at the next Start: the service "
            f"fixes the echo reference for a connection (this one keeps the {'client' if live else 'server'} "
            "reference)"
        )

    def sync(self, draft: Mapping[str, Any]) -> None:
        """Show the draft's reference, and the held change or what the reference means."""
        box, note = self.box, self.note
        if box is None or note is None:
            return
        on = _is_client(_lookup(draft, ECHO_PATH))
        _set(box, "value", on)
        if self.held is not None and self.live is not None:
            text, style = self.held_text(self.live), _ERROR_STYLE
        elif on:
            text, style = (
                "stereo input: channel 0 the microphone, channel 1 what the speaker played",
                _HINT_STYLE,
            )
        else:
            text, style = "", _HINT_STYLE
        _set(note, "value", f'<span style="{style}">{html.escape(text)}</span>' if text else "")


# ----------------------------------------------------------------------------------------------
# the form
# ----------------------------------------------------------------------------------------------


class ConfigForm(W.VBox):  # type: ignore[misc]
    """The whole :class:`SessionConfig` as a generated, validated, debounced form.

    ``on_change(config)`` is called with each new valid configuration, at most once per
    ``debounce_s`` of quiet (on the running asyncio loop of the thread that edited, i.e. the
    kernel's thread in Jupyter; on a timer thread where that thread runs no loop;
    ``debounce_s=0``: at once, on the caller's thread). It must not block. ``exclude`` lists dotted paths left out of the form (with
    everything under them); ``model`` by default, since it is fixed once connected. Failures
    of the form's own callbacks (and of ``on_change``) are shown in ``message`` and passed to
    ``on_error(text)``.
    """

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        on_change: Callable[[SessionConfig], Any] | None = None,
        debounce_s: float = 0.3,
        exclude: Iterable[str] = ("model",),
        on_error: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.on_change = on_change
        self.on_error = on_error
        self.debounce_s = debounce_s
        self._lock = threading.RLock()
        self._syncing = False
        self._valid: SessionConfig = config if config is not None else SessionConfig.server_vad()
        self._draft: dict[str, Any] = self._valid.to_dict()
        self._parse_errors: dict[str, str] = {}
        self._config_error: tuple[str, str] | None = None
        self._debounce: Debouncer[SessionConfig] = Debouncer(self._deliver)
        self._confirmed: dict[str, str] = {}  # path → "✓ applied" note, until the field changes again
        self._stash: dict[tuple[str, Any], dict[str, Any]] = {}  # (discriminator, type) → its values
        self._effective_server: dict[str, Any] = {}  # what session.updated says the service uses
        self._echo = _EchoReference(self._valid)

        excluded = tuple(exclude)
        specs = [
            s for s in field_specs() if not any(s.path == e or s.path.startswith(e + ".") for e in excluded)
        ]
        self._kit = _Kit()
        self._table = _FieldTable(specs, self._kit, self._widget_changed)
        self.fields: dict[str, _Field] = self._table.fields
        self._groups: dict[str, W.VBox] = self._table.groups
        self._selector_of = self._table.selector_of
        self._build()
        self._sync_widgets()

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        """The toolbar, the section tabs and the echo reference row."""
        sections = self._table.sections
        if ECHO_PATH in self._groups:
            self._echo.build(self._kit, self._groups[ECHO_PATH], self._echo_reference_toggled)
        self.echo_reference: Any = self._echo.box  # None without the echo-cancellation group
        self.echo_reference_note: Any = self._echo.note

        self.presets = W.Dropdown(
            options=[_PRESET_PROMPT, *PRESETS], description="load", layout=W.Layout(width="220px")
        )
        self.presets.observe(self._preset_chosen, names="value")
        self.export_button = W.Button(description="Export", icon="download", layout=W.Layout(width="110px"))
        self.export_button.on_click(self._export_clicked)
        self.message = W.HTML()
        self.export_output = W.Output(layout=W.Layout(max_height="240px", overflow="auto"))
        titles = [title for title, _ in SECTIONS if sections[title]]
        self.tabs = W.Tab(children=[W.VBox(sections[t]) for t in titles], titles=titles)
        self.children = (
            W.HBox([self.presets, self.export_button, self.message]),
            self.tabs,
            self.export_output,
        )

    # ------------------------------------------------------------------ public API

    @property
    def config(self) -> SessionConfig:
        """The last valid configuration."""
        return self._valid

    @property
    def draft(self) -> dict[str, Any]:
        """A copy of what the widgets show (a wire dict; may be invalid)."""
        with self._lock:
            copy: dict[str, Any] = json.loads(json.dumps(self._draft))
            return copy

    @property
    def errors(self) -> dict[str, str]:
        """``{path: message}`` of the errors shown beside fields."""
        with self._lock:
            out = dict(self._parse_errors)
            if self._config_error is not None:
                out.setdefault(*self._config_error)
            return out

    @property
    def _live_reference(self) -> bool | None:
        """The echo reference of the live connection (``None``: no connection known)."""
        return self._echo.live

    @property
    def pending(self) -> bool:
        """True while a valid change waits for its debounced ``on_change``."""
        return self._debounce.pending

    def widget(self, path: str) -> Any:
        """The input widget of a dotted field path (a group's selector for an object path)."""
        return self.fields[self._selector_of.get(path, path)].widget

    def is_visible(self, path: str) -> bool:
        with self._lock:
            return self._table.visible(self._draft, self._selector_of.get(path, path))

    def set_config(self, config: SessionConfig) -> None:
        """Show ``config`` (e.g. after ``session.updated``) without calling ``on_change``.

        Drops a change still waiting for its debounce, and any invalid edits.
        """
        with self._lock:
            self._debounce.cancel()
            config = self._echo.shown(config)
            self._valid = config
            self._draft = config.to_dict()
            self._parse_errors.clear()
            self._config_error = None
            self._sync_widgets()

    def load_preset(self, name: str) -> SessionConfig:
        """Load ``SessionConfig.<name>()`` as if typed in (``on_change`` follows, debounced).

        What the user wrote is kept: the current ``instructions`` (also over the quickstart's own),
        and ``voice`` / ``tools`` / ``tool_choice`` when the preset does not set them.
        """
        if name not in PRESETS:
            raise ConfigError("preset", name, "one of: " + ", ".join(PRESETS))
        config: SessionConfig = getattr(SessionConfig, name)()
        with self._lock:
            draft = config.to_dict()
            current = self._valid.to_dict()
            for key in PRESET_KEEPS:
                mine = current.get(key, UNSET)
                if mine is not UNSET and (key not in draft or (key == "instructions" and mine)):
                    draft[key] = mine
            self._draft = draft
            self._parse_errors.clear()
            emit = self._validate(None)
            self._sync_widgets()
        if emit is not None:
            self._schedule(emit)
        return config

    def confirm_applied(self, paths: Iterable[str], note: str = "✓ applied") -> list[str]:
        """Mark fields as applied (the panel calls this when ``session.updated`` acknowledged
        them): ``note`` beside each, until it is edited again. Returns the fields marked."""
        marked: list[str] = []
        with self._lock:
            for path in paths:
                target = self._table.locate(self._draft, path, None) if path not in self.fields else path
                if target in self.fields and target not in marked:
                    self._confirmed[target] = note
                    marked.append(target)
            self._sync_widgets()
        if marked:
            self._set_message(f"applied to the session: {', '.join(marked)}", ok=True)
        return marked

    def set_effective(self, session: Mapping[str, Any]) -> None:
        """What the service reports it uses (``session.updated``): a field left unset shows the
        service's value beside it (``service default: en-US-…``)."""
        with self._lock:
            new = json.loads(json.dumps(dict(session), default=str))
            if self._echo.heard(new.get(ECHO_PATH)):
                self._sync_widgets(values=False)
            if same_value(new, self._effective_server):
                return
            self._effective_server = new
            # hints only: the values stay as they are, so a value being typed (perhaps a refused
            # one) is never replaced by the draft while the service's echo arrives
            self._sync_widgets(values=False)

    def flush(self) -> bool:
        """Deliver a change waiting for its debounce now; True if there was one.

        With a held client-echo-reference change (see the module doc) this is the Start of a new
        connection: the whole form is delivered, the held change included."""
        with self._lock:
            emit = self._debounce.take()
            if self._echo.release():
                emit = self._valid  # the whole form, the held change included
                self._sync_widgets(values=False)
        if emit is None:
            return False
        self._deliver(emit)
        return True

    def to_dict(self) -> dict[str, Any]:
        return self._valid.to_dict()

    def to_json(self, indent: int | None = 2, *, redact_secrets: bool = True) -> str:
        """The configuration as JSON; values of keys like ``authorization`` shown as ``***``."""
        data = self.to_dict()
        return json.dumps(redact(data) if redact_secrets else data, indent=indent)

    def close(self) -> None:
        """Stop the debounce wait and close every widget of the form (layouts and styles too)."""
        self._debounce.cancel()
        extra = [*(w for f in self.fields.values() for w in f.widgets()), *self._kit.widgets()]
        for widget in widget_tree(self, extra):
            if widget is not self:
                widget.close()
        super().close()

    # ------------------------------------------------------------------ reacting to widgets

    def _widget_changed(self, path: str) -> None:
        try:
            with self._lock:
                if self._syncing:
                    return  # our own update from set_config / a sync: no feedback loop
                emit = self._apply(path)
                self._sync_widgets()
        except Exception as exc:  # a bug here must show, not vanish into the comm handler
            log.exception("config form: handling %s failed", path)
            self._set_message(f"form error at {path}: {type(exc).__name__}: {exc}", error=True)
            return
        if emit is not None:
            self._schedule(emit)

    def _apply(self, path: str) -> SessionConfig | None:
        field = self.fields[path]
        container = getattr(field, "container", None)
        target = container if container is not None else path
        old = _as_object(target, _lookup(self._draft, target))
        try:
            value = field.read(old)
        except _ParseError as exc:
            self._parse_errors[path] = str(exc)
            self._confirmed.pop(path, None)
            return None
        self._parse_errors.pop(path, None)
        self._confirmed.pop(path, None)
        if isinstance(field, _ModeField):
            if value == ON:
                if not isinstance(old, dict):
                    _assign(self._draft, target, {})
            else:
                _assign(self._draft, target, value)
        elif isinstance(field, _SelectorField):
            if value is UNSET or value is None:
                _assign(self._draft, target, value)
            else:
                node = dict(old) if isinstance(old, dict) else {}
                _assign(self._draft, target, node)
                self._retype(field.path, value)
        elif path in self._table.discriminated:
            self._retype(path, value)
        else:
            _assign(self._draft, path, value)
        return self._validate(path)

    def _retype(self, discriminator: str, value: Any) -> None:
        """Set a discriminator; drop fields that no longer apply, apply the new type's defaults."""
        previous = _lookup(self._draft, discriminator)
        specs = self._table.discriminated.get(discriminator, ())
        if isinstance(previous, str) and previous != value:  # keep that type's values while the form lives
            self._stash[(discriminator, previous)] = {
                spec.path: json.loads(json.dumps(got))
                for spec in specs
                if (got := _lookup(self._draft, spec.path)) is not UNSET
            }
        _assign(self._draft, discriminator, value)
        if value is UNSET:
            return
        kept = self._stash.get((discriminator, value))
        for spec in specs:
            current = _lookup(self._draft, spec.path)
            if spec.applies_to and value not in spec.applies_to:
                if current is not UNSET and isinstance(_lookup(self._draft, _parent(spec.path)), dict):
                    _assign(self._draft, spec.path, UNSET)
            elif kept is not None and spec.path in kept:
                _assign(self._draft, spec.path, kept[spec.path])
            elif value in spec.type_defaults:
                _assign(self._draft, spec.path, spec.type_defaults[value])

    def _validate(self, changed: str | None) -> SessionConfig | None:
        """Build the draft with ``with_changes``; on success return it if it differs from the last."""
        before = self._valid.to_dict()
        try:
            new = self._valid.with_changes(_delta(before, self._draft, self._table.containers))
        except ConfigError as exc:
            where = self._table.locate(self._draft, exc.field, changed)
            self._config_error = (where, self._scrub(str(exc)))
            return None
        self._config_error = None
        self._valid = new
        self._draft = new.to_dict()
        return None if same_value(new.to_dict(), before) else new

    def _scrub(self, text: str) -> str:
        for secret in _secrets_in(self._draft):
            text = text.replace(secret, REDACTED)
        return text

    # ------------------------------------------------------------------ visibility and sync

    def _sync_widgets(self, *, values: bool = True) -> None:
        """Make every widget show the draft (values, visibility, hints, errors); no on_change.

        ``values=False`` refreshes visibility, hints and errors only."""
        self._syncing = True
        try:
            error_at, error_text = self._config_error or ("", "")
            for path, field in self.fields.items():
                _set(field.row.layout, "display", None if self._table.visible(self._draft, path) else "none")
                hint = ""
                if path not in self._parse_errors:
                    if isinstance(field, (_SelectorField, _ModeField)):
                        container_value = _lookup(self._draft, field.container)
                        if not values:
                            pass
                        elif isinstance(field, _SelectorField):
                            field.show_state(container_value, _lookup(self._draft, path))
                        else:
                            field.show_state(container_value)
                        if container_value is UNSET:
                            hint = self._server_hint(field.container)
                    else:
                        assert field.spec is not None
                        value, default = (
                            _lookup(self._draft, path),
                            self._table.default(self._draft, field.spec),
                        )
                        if values:
                            field.show(value, default)
                        hint = field.hint_for(value, default)
                        if value is UNSET:
                            hint = self._server_hint(path) or hint
                error = self._parse_errors.get(path) or (error_text if path == error_at else "")
                field.set_messages(hint, error, self._confirmed.get(path, ""))
            for path, box in self._groups.items():
                _set(box.layout, "display", None if self._table.visible(self._draft, path) else "none")
            self._echo.sync(self._draft)
        finally:
            self._syncing = False

    def _server_hint(self, path: str) -> str:
        """``service default: …`` for a field the draft leaves unset but the service reports."""
        value = _lookup(self._effective_server, path) if self._effective_server else UNSET
        if value is UNSET or value is None:
            return ""
        if path == "voice":
            voice = _as_object(path, value)
            if isinstance(voice, Mapping):
                name, kind = voice.get("name"), voice.get("type")
                text = f"{name} ({kind})" if name and kind else str(name or kind or "")
                return f"(service default: {text})" if text else ""
        if isinstance(value, Mapping):
            text = str(value.get("type") or value.get("model") or "")
            return f"(service default: {text})" if text else ""
        return f"(service default: {_short(_fmt(value))})"

    # ------------------------------------------------------------------ debounce and delivery

    def _schedule(self, config: SessionConfig) -> None:
        if self.debounce_s <= 0:
            self._deliver(config)
            return
        self._debounce.schedule(config, self.debounce_s)

    def _echo_reference_toggled(self, change: Mapping[str, Any]) -> None:
        emit: SessionConfig | None = None
        try:
            with self._lock:
                if self._syncing:
                    return
                wanted = self._valid.with_client_echo_reference(bool(change["new"]))
                self._draft[ECHO_PATH] = wanted.to_dict()[ECHO_PATH]
                self._confirmed.pop(ECHO_PATH, None)
                emit = self._validate(ECHO_PATH)
                self._sync_widgets()
        except Exception as exc:  # a bug here must show, not vanish into the comm handler
            log.exception("config form: the client echo reference toggle failed")
            self._set_message(f"form error at client echo reference: {type(exc).__name__}: {exc}", error=True)
            return
        if emit is not None:
            self._schedule(emit)

    def _hold_echo_reference(self, config: SessionConfig) -> SessionConfig:
        """What ``on_change`` may get now (see :meth:`_EchoReference.hold`); a held change is said."""
        with self._lock:
            live = self._echo.live
            config, held = self._echo.hold(config)
            self._sync_widgets(values=False)
        if held:
            self._set_message(self._echo.held_text(bool(live)))
        return config

    def _deliver(self, config: SessionConfig) -> None:
        callback = self.on_change
        if callback is None:
            return
        config = self._hold_echo_reference(config)
        try:
            callback(config)
        except Exception as exc:  # shown and logged, never swallowed
            log.exception("config form: on_change failed")
            self._set_message(f"applying the configuration failed: {type(exc).__name__}: {exc}", error=True)

    def _set_message(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        if error and self.on_error is not None:
            try:
                self.on_error(self._scrub(text))
            except Exception:
                log.exception("config form: on_error failed")
        style = _ERROR_STYLE if error else _OK_STYLE if ok else _HINT_STYLE
        _set(
            self.message,
            "value",
            f'<span style="{style}">{html.escape(self._scrub(text))}</span>' if text else "",
        )

    # ------------------------------------------------------------------ toolbar

    def _preset_chosen(self, change: Mapping[str, Any]) -> None:
        name = change["new"]
        if name == _PRESET_PROMPT:
            return
        try:
            self.load_preset(name)
            self._set_message(f"loaded preset {name}")
        except Exception as exc:
            log.exception("config form: loading preset %s failed", name)
            self._set_message(f"loading preset {name} failed: {exc}", error=True)
        finally:
            self.presets.value = _PRESET_PROMPT

    def _export_clicked(self, _button: Any) -> None:
        try:
            self.export_output.outputs = ()
            self.export_output.append_stdout(self.to_json() + "\n")
        except Exception as exc:
            log.exception("config form: export failed")
            self._set_message(f"export failed: {exc}", error=True)
