"""A Python callable as a function tool: name, description and JSON schema from the function itself.

The schema comes from the signature and type hints through pydantic, the library that
pydantic-ai and openai-agents use for the same job: ``Literal`` and enums become ``enum``,
dataclasses, ``TypedDict`` and pydantic models become nested objects, defaults are kept, and
``Annotated[T, "text"]`` or the docstring's parameter section (Google, NumPy or Sphinx style)
gives each property its description. The same pydantic model validates the model's arguments
before the call, so the function receives the declared types (an ``Enum`` member, a dataclass
instance) and a bad argument becomes a :class:`ToolArgumentsError` whose text goes back to the
model as the tool's output, so that it can try again.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from ..errors import ConfigError, VoiceLiveError

__all__ = ["Tool", "ToolArgumentsError", "as_tool", "tool"]

#: The service's rule for function names (as OpenAI's: letters, digits, ``_`` and ``-``, ≤ 64).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolArgumentsError(VoiceLiveError, ValueError):
    """The model's arguments for a tool did not match its schema; the text is meant for the model."""


@dataclass(frozen=True)
class Tool:
    """A function the voice agent may call.

    ``parameters`` is the JSON schema sent to the service; ``timeout_s`` bounds one call (the
    model is told when it is exceeded). Build one with :func:`as_tool` or :func:`tool`.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] = field(repr=False, compare=False)
    timeout_s: float | None = 30.0
    _model: Any = field(default=None, repr=False, compare=False)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(
            getattr(self.fn, "__call__", None)  # noqa: B004 - an object with an async __call__
        )

    def definition(self) -> dict[str, Any]:
        """The tool as the session's ``tools`` list carries it."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def parse(self, arguments: str | None) -> dict[str, Any]:
        """The keyword arguments for ``fn`` from the model's JSON text; :class:`ToolArgumentsError` if bad."""
        from pydantic import ValidationError

        text = (arguments or "").strip() or "{}"
        try:
            validated = self._model.model_validate_json(text)
        except ValidationError as exc:
            raise ToolArgumentsError(_describe(self.name, exc)) from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}


def as_tool(
    obj: Callable[..., Any] | Tool,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = 30.0,
) -> Tool:
    """``obj`` as a :class:`Tool` (a Tool is returned as it is unless something is overridden)."""
    if isinstance(obj, Tool):
        if name is None and description is None:
            return obj
        obj = obj.fn
    if not callable(obj):
        raise ConfigError("tools", obj, "a function or a voicelive_nb.tools.Tool")
    if timeout_s is not None and not timeout_s > 0:
        raise ConfigError("timeout_s", timeout_s, "a positive number of seconds, or None for no limit")
    fn_name = name or getattr(obj, "__name__", None) or type(obj).__name__
    if not _NAME.match(fn_name):
        raise ConfigError("tools.name", fn_name, "1 to 64 letters, digits, '_' or '-'")
    summary, param_docs = parse_docstring(inspect.getdoc(obj) or "")
    model = _arguments_model(obj, fn_name, param_docs)
    schema = _clean_schema(model.model_json_schema())
    return Tool(fn_name, description or summary, schema, obj, timeout_s, model)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = 30.0,
) -> Any:
    """:func:`as_tool` usable as a decorator, with or without arguments."""
    if fn is None:
        return lambda f: as_tool(f, name=name, description=description, timeout_s=timeout_s)
    return as_tool(fn, name=name, description=description, timeout_s=timeout_s)


# ------------------------------------------------------------------------------ the model


def _arguments_model(fn: Callable[..., Any], fn_name: str, param_docs: dict[str, str]) -> Any:
    from pydantic import ConfigDict, Field, create_model

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError("tools", fn_name, f"a function with an inspectable signature ({exc})") from None
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    fields: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tools.{fn_name}", f"*{pname}", "named parameters only (no *args or **kwargs)")
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigError(f"tools.{fn_name}", pname, "parameters that can be passed by keyword")
        annotation = hints.get(pname, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        annotation, text = _split_annotated(annotation)
        doc = text or param_docs.get(pname)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, Field(default, description=doc) if doc else Field(default))
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    try:
        return create_model(f"{fn_name}_arguments", __config__=config, **fields)
    except Exception as exc:  # pydantic cannot describe a type
        raise ConfigError(
            f"tools.{fn_name}", fn_name, f"parameters with JSON-describable types ({exc})"
        ) from None


def _split_annotated(annotation: Any) -> tuple[Any, str | None]:
    """``Annotated[T, "text", ...]`` → ``(Annotated[T, ...non-strings], "text")``."""
    if get_origin(annotation) is not Annotated:
        return annotation, None
    base, *meta = get_args(annotation)
    texts = [m for m in meta if isinstance(m, str)]
    rest = [m for m in meta if not isinstance(m, str)]
    kept = Annotated.__class_getitem__((base, *rest)) if rest else base
    return kept, (" ".join(texts) if texts else None)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The pydantic schema without its decorative ``title`` keys (they cost tokens and say nothing)."""

    def strip(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            return {
                k: strip(v, in_properties=(k in ("properties", "$defs")))
                for k, v in node.items()
                if not (k == "title" and not in_properties and isinstance(v, str))
            }
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    cleaned: dict[str, Any] = strip(schema)
    cleaned.setdefault("properties", {})
    cleaned["type"] = "object"
    return cleaned


def _describe(name: str, exc: Any) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return (
        f"invalid arguments for {name}: " + "; ".join(problems) + "; call it again with corrected arguments"
    )


# ------------------------------------------------------------------------------ docstrings

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:?\s*$", re.I)
_OTHER_SECTION = re.compile(
    r"^(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|References|Attributes|Warnings?)\s*:?\s*$", re.I
)
_UNDERLINE = re.compile(r"^-{3,}\s*$")
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(:\s*.*)?$")
_SPHINX_ITEM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(summary, {parameter: description})`` from a Google, NumPy or Sphinx style docstring."""
    lines = doc.expandtabs().splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()) or line.strip().startswith(":"):
            break
        summary_lines.append(line.strip())
    summary = " ".join(summary_lines)
    params: dict[str, str] = {}
    params.update(_sphinx_params(lines))
    params.update(_section_params(lines))
    return summary, params


def _sphinx_params(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    current: str | None = None
    for raw in lines:
        line = raw.strip()
        match = _SPHINX_ITEM.match(line)
        if match:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current and line and not line.startswith(":"):
            found[current] = f"{found[current]} {line}".strip()
        else:
            current = None
    return found


def _section_params(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i].strip()):
            i += 1
            continue
        numpy = i + 1 < len(lines) and bool(_UNDERLINE.match(lines[i + 1].strip()))
        i += 2 if numpy else 1
        base_indent: int | None = None
        current: str | None = None
        while i < len(lines):
            raw = lines[i]
            line = raw.strip()
            if _OTHER_SECTION.match(line) or _SECTION.match(line):
                break
            if not line:
                i += 1
                continue
            indent = len(raw) - len(raw.lstrip())
            if base_indent is None:
                base_indent = indent
            if indent < base_indent:
                break
            if indent == base_indent:
                match = _NUMPY_ITEM.match(line) if numpy else _GOOGLE_ITEM.match(line)
                if match:
                    current = match.group(1).lstrip("*")
                    found[current] = "" if numpy else match.group(3).strip()
                i += 1
                continue
            if current:
                found[current] = f"{found[current]} {line}".strip()
            i += 1
    return found


def dumps_compact(value: Any) -> str:
    """JSON text without spaces, for arguments shown to a person."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
