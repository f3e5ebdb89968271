"""Answer forms built from a question's JSON Schema, and the submitted fields turned back into the value.

The schema decides the widgets: a boolean is a yes/no choice, an enum a select, a number a number field, a
string a text field, an object with properties one field per property. Anything else (arrays, unions, no
schema) is a JSON text area. The value built here is only a candidate: `Repository.send` validates it against
the schema, and a refusal (with its reason) changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Name prefix of the fields of an object's properties (`field.<property>`).
PROPERTY = "field."


@dataclass(frozen=True)
class Field:
    """One input of an answer form."""

    name: str  # the form field name
    label: str
    kind: str  # "bool", "enum", "integer", "number", "string", "json"
    required: bool = True
    choices: list[Any] = field(default_factory=list)
    description: str = ""


def fields(schema: dict[str, Any] | None) -> list[Field]:
    """The inputs of the form answering a question with `schema`."""
    schema = schema or {}
    props = schema.get("properties")
    if schema.get("type") == "object" and isinstance(props, dict) and props:
        required = set(schema.get("required") or ())
        return [
            _field(PROPERTY + name, str(sub.get("title") or name), sub, name in required)
            for name, sub in props.items()
            if isinstance(sub, dict)
        ]
    return [_field("value", "answer", schema, True)]


def _field(name: str, label: str, schema: dict[str, Any], required: bool) -> Field:
    description = str(schema.get("description") or "")
    if isinstance(schema.get("enum"), list):
        return Field(name, label, "enum", required, list(schema["enum"]), description)
    kind = schema.get("type")
    if kind in ("boolean", "integer", "number", "string"):
        return Field(name, label, "bool" if kind == "boolean" else kind, required, [], description)
    return Field(name, label, "json", required, [], description or "a JSON value")


def value(schema: dict[str, Any] | None, form: dict[str, str]) -> Any:
    """The answer the submitted `form` describes (not yet validated). ValueError says which field is wrong."""
    built = fields(schema)
    if built and built[0].name.startswith(PROPERTY):
        result = {}
        for f in built:
            raw = form.get(f.name, "")
            if raw == "" and not f.required:
                continue
            result[f.name[len(PROPERTY) :]] = _convert(f, raw)
        return result
    return _convert(built[0], form.get("value", ""))


def _convert(f: Field, raw: str) -> Any:
    if f.kind == "bool":
        if raw not in ("true", "false"):
            raise ValueError(f"{f.label}: choose yes or no")
        return raw == "true"
    if f.kind == "enum":
        for choice in f.choices:  # the select sends each choice as its JSON text
            if raw == json.dumps(choice):
                return choice
        raise ValueError(f"{f.label}: {raw!r} is not one of the choices")
    if f.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{f.label}: {raw!r} is not a whole number") from None
    if f.kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{f.label}: {raw!r} is not a number") from None
        return int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number
    if f.kind == "string":
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{f.label}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def json_value(raw: str, what: str) -> Any:
    """A value typed as JSON in a form (an edit, an effect's result); plain text that is not JSON is a string."""
    text = raw.strip()
    if not text:
        raise ValueError(f'{what}: empty; type a JSON value, e.g. "text", 42, true or {{"k": 1}}')
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text[0] in '[{"':
            raise ValueError(f"{what}: {text[:40]!r} looks like JSON but does not parse") from None
        return raw
