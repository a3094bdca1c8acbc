"""How the emulator decides to call a function tool, deterministically, from what the user said.

The emulator has no language model; it calls tools by rule, so that tool calling can be tested
and demonstrated with no Azure account. Given the session's ``tools``, its ``tool_choice`` and
the user's utterance (the recognised text, or the text of a typed message):

**Which tool** (:func:`choose_tool`)
- ``tool_choice`` ``"none"``: never. A named function (``{"type": "function", "name": N}``, or
  the bare string N): N, whatever was said.
- ``"auto"`` (the default): a function tool whose *name words* all occur in the utterance
  (``count_missing`` → "count" and "missing"; generic verbs such as *get*, *show*, *compute*
  need not occur), or else the one whose description shares the most content words with the
  utterance (at least two). Ties go to the tool listed first. No match: no call.
- ``"required"``: as ``"auto"``, falling back to the first function tool.

**Its arguments** (:func:`fill_arguments`), property by property of its JSON schema:
- ``enum`` (and ``Literal``): the first allowed value that occurs in the utterance;
- ``integer`` / ``number``: the numbers of the utterance in order (digits or the words
  *zero* … *twenty*, *thirty* … *ninety*, *hundred*), one per numeric property;
- ``boolean``: true when the property's words occur, false after *not*/*no*/*without*;
- ``string``: a quoted phrase (``"…"`` or ``'…'``); else the words (as written) after the property's own name
  or after *in*, *for*, *of*, *about*, *named*, *called*, up to the end of the clause (punctuation,
  a number, or the next such little word);
- otherwise the schema's ``default``; a required property with nothing found gets ``""``
  (a string), ``0`` (a number) or ``false`` (a boolean) — the model would guess too, and a
  tool's argument validation is what catches it.

**Several calls** (:func:`plan_calls`): with ``tool_choice`` ``"auto"`` or ``"required"`` and
``parallel_tool_calls`` not false, every further function tool whose name words all occur in the
utterance is called too, in the order the tools are listed; each tool's arguments are filled from
the clause (split at ``,``/``;``/``.``/``?``/``!`` and *and*) that names it, else from the whole
utterance. The arguments are sent as JSON in several ``response.function_call_arguments.delta``
pieces (:func:`argument_deltas`).

**MCP tools** (:func:`choose_mcp`, only when no function tool is called): an ``mcp`` tool whose
``server_label`` words, or one of whose ``allowed_tools``' name words, all occur in the utterance
is used, calling that allowed tool (else the first allowed one, else one named ``search``) with
``{"query": <the utterance>}``. With ``require_approval`` ``"always"`` (the default, or the tool
listed under ``always``) the response carries an ``mcp_approval_request`` item and the emulator
waits; an approving ``mcp_approval_response`` starts a response with the ``mcp_call`` item (a
canned output, :func:`mcp_output` — no MCP server is contacted) and a spoken quote of it, a
denial a response saying it was not allowed. With ``"never"`` the call is made at once.

The reply after the tool's output quotes the output (see :func:`reply_for_output`); an output
starting with ``error:`` (how :class:`voicelive_nb.tools.ToolRunner` reports a raising tool or
arguments that failed validation) is spoken as the failure. The emulator does not retry a call on
its own: after an error output it speaks the error, and the user asks again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "argument_deltas",
    "choose_mcp",
    "choose_tool",
    "encode_arguments",
    "fill_arguments",
    "is_named_choice",
    "mcp_denied",
    "mcp_output",
    "needs_approval",
    "plan_calls",
    "replies_for_outputs",
    "reply_for_output",
    "words",
]

_GENERIC = frozenset(
    [
        "get",
        "set",
        "list",
        "show",
        "find",
        "fetch",
        "compute",
        "calc",
        "calculate",
        "run",
        "do",
        "make",
        "lookup",
        "look",
        "query",
        "describe",
        "tell",
        "give",
    ]
)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "what",
        "which",
        "who",
        "how",
        "many",
        "much",
        "me",
        "my",
        "i",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "do",
        "does",
        "did",
        "please",
        "can",
        "could",
        "would",
        "will",
        "there",
        "their",
        "have",
        "has",
        "had",
        "any",
        "some",
        "all",
    ]
)
_PREPOSITIONS = ("in", "for", "of", "about", "named", "called", "at", "from")
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_NUMBER_WORDS.update(
    {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
)
_NUMBER_WORDS["hundred"] = 100
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'|“([^”]+)”")
_CLAUSE_END = re.compile(r"[,.;!?]|\s(?:and|or|with|then|in|for|of|about|at|from|to|please)\s|\s\d")


def words(text: str) -> list[str]:
    """Lowercase word tokens; ``snake_case`` and ``camelCase`` split."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ").replace("-", " ")
    return re.findall(r"[a-z0-9']+", spaced.lower())


def _function_tools(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        t
        for t in tools
        if isinstance(t, Mapping) and t.get("type", "function") == "function" and t.get("name")
    ]


def choose_tool(
    utterance: str, tools: Sequence[Mapping[str, Any]], tool_choice: Any = "auto"
) -> Mapping[str, Any] | None:
    """The function tool to call for ``utterance``, or None (rules in the module docstring)."""
    functions = _function_tools(tools)
    if not functions or tool_choice == "none":
        return None
    if is_named_choice(tool_choice):
        wanted = _choice_name(tool_choice)
        return next((t for t in functions if t["name"] == wanted), None)
    said = set(words(utterance))
    for t in functions:
        if _named(t, said):
            return t
    best, best_score = None, 1
    for t in functions:
        described = {w for w in words(str(t.get("description", ""))) if w not in _STOP and w not in _GENERIC}
        score = len(described & said)
        if score > best_score:
            best, best_score = t, score
    if best is not None:
        return best
    return functions[0] if tool_choice == "required" else None


def is_named_choice(tool_choice: Any) -> bool:
    """True for a ``tool_choice`` that names one function (an object, or a bare name)."""
    if isinstance(tool_choice, Mapping):
        return True
    return isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required")


def _choice_name(tool_choice: Any) -> Any:
    if isinstance(tool_choice, Mapping):
        return tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
    return tool_choice


def _named(tool: Mapping[str, Any], said: set[str]) -> bool:
    needed = [w for w in words(str(tool["name"])) if w not in _GENERIC]
    return bool(needed) and all(w in said for w in needed)


_CLAUSES = re.compile(r"[,.;!?]+|\s+and\s+", re.IGNORECASE)


def plan_calls(
    utterance: str,
    tools: Sequence[Mapping[str, Any]],
    tool_choice: Any = "auto",
    *,
    parallel: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """The calls one response makes for ``utterance``: ``(name, arguments)`` pairs, maybe none."""
    first = choose_tool(utterance, tools, tool_choice)
    if first is None:
        return []
    chosen = [first]
    if parallel and not is_named_choice(tool_choice):
        said = set(words(utterance))
        chosen += [t for t in _function_tools(tools) if t is not first and _named(t, said)]
        if len(chosen) > 1:
            order = [t["name"] for t in _function_tools(tools)]
            chosen.sort(key=lambda t: order.index(t["name"]))
    clauses = [c for c in _CLAUSES.split(utterance) if c.strip()]
    plan: list[tuple[str, dict[str, Any]]] = []
    for t in chosen:
        text = utterance
        if len(chosen) > 1:
            text = next((c for c in clauses if _named(t, set(words(c)))), utterance)
        schema = t.get("parameters")
        plan.append((str(t["name"]), fill_arguments(text, schema if isinstance(schema, Mapping) else {})))
    return plan


_JSON_TOKEN = re.compile(r'\s+|[{}\[\]:,]|"(?:\\.|[^"\\])*"|[^\s{}\[\]:,"]+')


def argument_deltas(arguments: str) -> list[str]:
    """``arguments`` (JSON text) cut into the pieces sent as argument deltas; they join back to it."""
    pieces = _JSON_TOKEN.findall(arguments)
    if "".join(pieces) != arguments:
        pieces = [arguments[i : i + 8] for i in range(0, len(arguments), 8)]
    return pieces or [""]


def replies_for_outputs(outputs: Sequence[tuple[str, str]]) -> str:
    """What the emulator says after the outputs ``(tool name, output)`` of one round of calls."""
    return " ".join(reply_for_output(name, output) for name, output in outputs)


def choose_mcp(utterance: str, tools: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], str] | None:
    """The MCP tool and the name of the tool on its server to call for ``utterance``, or None."""
    said = set(words(utterance))
    for t in tools:
        if not isinstance(t, Mapping) or t.get("type") != "mcp" or not t.get("server_label"):
            continue
        allowed = [str(n) for n in t.get("allowed_tools") or () if isinstance(n, str) and n]
        named = [n for n in allowed if _named({"name": n}, said)]
        if named:
            return t, named[0]
        label = [w for w in words(str(t["server_label"])) if w not in _GENERIC]
        if label and all(w in said for w in label):
            return t, allowed[0] if allowed else "search"
    return None


def needs_approval(tool: Mapping[str, Any], name: str) -> bool:
    """``require_approval`` of an MCP tool for the tool ``name``: ``"always"`` unless it says never."""
    rule = tool.get("require_approval", "always")
    if rule == "never":
        return False
    if isinstance(rule, Mapping):

        def listed(key: str) -> bool:
            names = rule.get(key)
            if isinstance(names, Mapping):
                names = names.get("tool_names")
            return isinstance(names, list) and name in names

        return not listed("never") or listed("always")
    return True


def mcp_output(server_label: str, name: str, arguments: Mapping[str, Any]) -> str:
    """The emulator's canned output of an MCP call (no server is contacted)."""
    return f"emulated {name} result from {server_label} for: {arguments.get('query', '')}"


def mcp_denied(server_label: str, name: str) -> str:
    """What the emulator says when an MCP call was not approved."""
    return f"I did not call {name} on {server_label}: it was not approved."


def encode_arguments(arguments: Mapping[str, Any]) -> str:
    """The JSON text of a call's arguments."""
    return json.dumps(dict(arguments), ensure_ascii=False)


def fill_arguments(utterance: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool of JSON ``schema`` from ``utterance`` (rules in the module docstring)."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    required = set(schema.get("required") or ())
    said = words(utterance)
    numbers = _numbers(utterance)
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(utterance)]
    args: dict[str, Any] = {}
    for name, prop in props.items():
        prop = _resolve(prop, schema)
        value = _value_for(str(name), prop, utterance, said, numbers, quoted)
        if value is not None:
            args[name] = value
        elif "default" in prop:
            args[name] = prop["default"]
        elif name in required:
            args[name] = _empty(prop)
    return args


def _resolve(prop: Any, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property's schema with one ``$ref`` or ``anyOf`` (optional) level looked through."""
    if not isinstance(prop, Mapping):
        return {}
    if "$ref" in prop:
        target = str(prop["$ref"]).rsplit("/", 1)[-1]
        resolved = (schema.get("$defs") or {}).get(target, {})
        return {**resolved, **{k: v for k, v in prop.items() if k != "$ref"}}
    for option in prop.get("anyOf") or ():
        if isinstance(option, Mapping) and option.get("type") != "null":
            return {**_resolve(option, schema), **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def _value_for(
    name: str,
    prop: Mapping[str, Any],
    utterance: str,
    said: list[str],
    numbers: list[float],
    quoted: list[str],
) -> Any:
    kind = prop.get("type")
    if isinstance(prop.get("enum"), list):
        text = " ".join(said)
        for option in prop["enum"]:
            if str(option).lower() and re.search(rf"\b{re.escape(str(option).lower())}\b", text):
                return option
        return None
    if kind in ("integer", "number"):
        if not numbers:
            return None
        value = numbers.pop(0)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        own = [w for w in words(name) if w not in _STOP]
        for i, w in enumerate(said):
            if w in own:
                return not (i > 0 and said[i - 1] in ("not", "no", "without"))
        return None
    if kind == "string" or kind is None:
        if quoted:
            return quoted.pop(0)
        return _phrase_after(utterance, [*words(name), *_PREPOSITIONS])
    return None


def _phrase_after(utterance: str, markers: Sequence[str]) -> str | None:
    for marker in markers:
        match = re.search(rf"\b{re.escape(marker)}\s+(?:the\s+)?(.+)", utterance, re.IGNORECASE)
        if match:
            phrase = _CLAUSE_END.split(match.group(1), maxsplit=1)[0].strip(" '\"")
            if phrase:
                return phrase
    return None


def _numbers(utterance: str) -> list[float]:
    found: list[tuple[int, float]] = [(m.start(), float(m.group())) for m in _NUMBER.finditer(utterance)]
    for m in re.finditer(r"[a-z]+", utterance.lower()):
        if m.group() in _NUMBER_WORDS:
            found.append((m.start(), float(_NUMBER_WORDS[m.group()])))
    return [v for _, v in sorted(found)]


def _empty(prop: Mapping[str, Any]) -> Any:
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(
        str(prop.get("type")), ""
    )


def reply_for_output(name: str, output: str, max_chars: int = 300) -> str:
    """What the emulator says after a tool returned ``output``: it quotes the output."""
    text = " ".join(str(output).split())
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    if text.lower().startswith("error:"):
        return f"The {name.replace('_', ' ')} tool failed: {text[6:].strip()}"
    return f"{name.replace('_', ' ').capitalize()} says: {text}"
