"""The files people write (training spec, contract, policy, monitor settings) as models.

Each file is one pydantic model, and that model is the class the rest of the code
uses, so the reader, the JSON Schema an editor checks against and the reference page
in ``docs/reference/`` all come from one declaration. This module holds what the four
share: the :class:`Document` base (unknown keys refused, every problem reported at
once by path, in the project's own error), the strict scalar types, the
:data:`Duration` field, and the registry behind ``setpoint schema NAME``.
"""

from __future__ import annotations

import difflib
import importlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from setpoint import _durations
from setpoint._yaml import TEXT, compose, load_user_yaml, position, where
from setpoint.errors import SetpointError, UsageError

__all__ = [
    "DOCUMENTS",
    "Document",
    "Duration",
    "DurationOrZero",
    "Flag",
    "Number",
    "Problems",
    "Text",
    "Whole",
    "document_class",
    "editor_line",
    "schema",
    "schema_path",
]

# Strict where YAML could pass a wrong type for a right one: `true` is not a number,
# "0.3" (quoted) is not a number, 1 is not `true`. A whole number is a Number.
Number = Annotated[float, Strict()]
Whole = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

# name -> (module, class): imported only when asked for, so the CLI starts small.
DOCUMENTS: dict[str, tuple[str, str]] = {
    "spec": ("setpoint.models.spec", "TrainSpec"),
    "contract": ("setpoint.data.contract", "Contract"),
    "policy": ("setpoint.loop.policy", "Policy"),
    "monitor": ("setpoint.monitoring.settings", "MonitorConfig"),
}

_DEPTH: ContextVar[int] = ContextVar("document_depth", default=0)
_SCHEMAS = Path(__file__).parent / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Problems(ValueError):
    """Raised from a model validator: several problems, each at a path below the
    validator's own place (``("split", "time_column")``), reported as field errors are."""

    def __init__(self, items: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in items))
        self.items = list(items)


class Document(BaseModel):
    """A file a person writes: unknown keys refused, frozen, every problem at once.

    Subclasses say what they are called in messages (``what``) and which error they
    raise (``error``); build them with :meth:`read` (a mapping), :meth:`read_yaml`, or
    keywords from Python, which report problems the same way."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        validate_default=False,
        use_attribute_docstrings=True,
    )

    what: ClassVar[str] = "the document"
    error: ClassVar[type[SetpointError]] = UsageError

    def __init__(self, /, **data: Any) -> None:
        # pydantic builds nested documents through __init__ too: only the outermost
        # turns the problems into our error, so every problem keeps its full path.
        depth = _DEPTH.get()
        token = _DEPTH.set(depth + 1)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if depth:
                raise
            raise type(self).problems(exc) from None
        finally:
            _DEPTH.reset(token)

    @model_validator(mode="wrap")
    @classmethod
    def _text_keys(cls, data: Any, handler: Any) -> Any:
        # Runs before pydantic passes a mapping to __init__ as keywords, where a key
        # that is not text (YAML's `1: x`) would be a TypeError, not a problem.
        if isinstance(data, Mapping):
            odd = [key for key in data if not isinstance(key, str)]
            if odd:
                raise ValueError(f"keys must be text, got {_shown(odd[0])}")
        return handler(data)

    @classmethod
    def read(cls, data: Any) -> Self:
        """The document from its plain form (YAML or JSON already parsed)."""
        return cls._read(data, None, None)

    @classmethod
    def read_yaml(cls, text: str, *, source: str | None = None) -> Self:
        """The document from YAML; ``source`` is the file it came from. Problems in a
        file are given as ``FILE:LINE:COLUMN: path: problem``."""
        data = load_user_yaml(text, what=cls.what, source=source, error=cls.error)
        return cls._read({} if data is None else data, text, source)

    @classmethod
    def _read(cls, data: Any, text: str | None, source: str | None) -> Self:
        if not isinstance(data, Mapping):
            where = f"{source}: " if source else ""
            raise cls.error(
                f"{where}{cls.what} is a mapping of keys to values, not {_kind(data)}",
                details=["(top): not a mapping"],
            )
        token = _DEPTH.set(_DEPTH.get() + 1)  # __init__ leaves the problems to us
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise cls.problems(exc, text=text, source=source) from None
        finally:
            _DEPTH.reset(token)

    @classmethod
    def problems(
        cls, exc: ValidationError, *, text: str | None = None, source: str | None = None
    ) -> SetpointError:
        """``exc`` as this document's error: one ``path: problem`` line per problem,
        each led by ``FILE:LINE:COLUMN:`` when the YAML ``text`` it came from is given."""
        found = [line for item in exc.errors(include_url=False) for line in _lines(cls, item)]
        tree = compose(text) if text is not None else None  # parsed once for every problem
        placed: list[tuple[tuple[int, int], str]] = []
        for steps, problem in found:
            path = _format(steps)
            line = f"{path}: {problem}" if path else problem
            at = position(tree, steps) if text is not None else None
            if text is not None:
                line = f"{where(source, at)}: {line}"
            placed.append((at or (0, 0), line))
        if text is not None:  # in the order of the file
            placed.sort(key=lambda entry: entry[0])
        lines = list(dict.fromkeys(line for _, line in placed))
        head = cls.what if text is None else f"{source or TEXT} ({cls.what})"
        if len(lines) == 1:
            message = lines[0] if text is not None else f"{head}: {lines[0]}"
            return cls.error(message, details=lines)
        headline = f"{head} has {len(lines)} problems"
        error = cls.error(f"{headline}: " + "; ".join(lines), details=lines)
        error.listing = (headline, tuple(lines))
        return error


Steps = tuple[str | int, ...]

# What a person writing YAML calls the types pydantic names in Python's words.
_PLAIN = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be text",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _lines(root: type[BaseModel], item: Mapping[str, Any]) -> list[tuple[Steps, str]]:
    """pydantic's error ``item`` as (the place the person sees, the problem)."""
    loc = tuple(item["loc"])
    kind = item["type"]
    error = (item.get("ctx") or {}).get("error")
    if isinstance(error, Problems):
        return [(_steps(root, loc + sub), message) for sub, message in error.items]
    if kind == "extra_forbidden":
        valid = _keys_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        steps = (*_steps(root, loc[:-1]), loc[-1])
        return [(steps, f"unknown key; {hint}valid keys are {', '.join(valid)}")]
    if kind == "missing":
        return [(_steps(root, loc), "is required")]
    if isinstance(error, ValueError):
        return [(_steps(root, loc), str(error))]
    message = _PLAIN.get(kind) or str(item["msg"])
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    else:
        message = message[:1].lower() + message[1:]
    return [(_steps(root, loc), f"{message}, got {_shown(item.get('input'))}")]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


# -- paths: pydantic's locations as the person wrote them -----------------------------


def _steps(root: type[BaseModel], loc: tuple[Any, ...]) -> Steps:
    """pydantic's location as the keys and indexes the person wrote (no union tags)."""
    return tuple(step for step, _ in _walk(root, loc))


def _format(steps: Steps) -> str:
    """``split.time_column``, ``triggers[2].performance``."""
    parts: list[str] = []
    for step in steps:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
    return "".join(parts)


def _keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at ``loc`` may have, in declaration order."""
    places = [kinds for _, kinds in _walk(root, loc)]
    kinds = places[-1] if places else [root]
    keys: list[str] = []
    for model in _models(kinds):
        for name, info in model.model_fields.items():
            key = info.alias or name
            if key not in keys:
                keys.append(key)
    return keys


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> typing.Iterator[tuple[Any, list[Any]]]:
    """Each step of ``loc`` the person would see (a key or an index), with the types
    that can stand at that place; pydantic's union tags are passed over."""
    kinds: list[Any] = [root]
    for step in loc:
        if isinstance(step, int):
            kinds = _flatten([a for k in kinds for a in _items(k)])
            yield step, kinds
            continue
        fields = {
            (info.alias or name): info.annotation
            for model in _models(kinds)
            for name, info in model.model_fields.items()
        }
        if step in fields:
            kinds = _flatten([fields[step]])
            yield step, kinds
            continue
        values = [a for k in kinds for a in _values(k)]
        if values:
            kinds = _flatten(values)
            yield step, kinds
        # anything else is a union member's tag, not a place in the file


def _flatten(kinds: list[Any]) -> list[Any]:
    out: list[Any] = []
    for kind in kinds:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            out.extend(_flatten([typing.get_args(kind)[0]]))
        elif origin in (typing.Union, types.UnionType):
            out.extend(_flatten(list(typing.get_args(kind))))
        else:
            out.append(kind)
    return out


def _models(kinds: list[Any]) -> list[type[BaseModel]]:
    return [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]


def _items(kind: Any) -> list[Any]:
    origin = typing.get_origin(kind)
    if origin in (list, tuple, Sequence, set, frozenset):
        return [a for a in typing.get_args(kind) if a is not Ellipsis]
    return []


def _values(kind: Any) -> list[Any]:
    origin = typing.get_origin(kind)
    if origin in (dict, Mapping):
        return [typing.get_args(kind)[1]]
    return []


# -- spans of time --------------------------------------------------------------------


def _as_text(value: Any) -> Any:
    # `window: 60` is a mistake worth the grammar's message, not "not a string".
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _span(*, zero: bool) -> AfterValidator:
    def check(text: str) -> str:
        try:
            _durations.parse_duration(text, what="", zero=zero)
        except UsageError as error:
            raise ValueError(error.message.strip()) from None
        return text

    return AfterValidator(check)


_SPAN_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "pattern": r"^ *(?:(?:\d+(?:\.\d+)?|\.\d+) *[wdhms] *)+$",
        "description": f"A span of time: {_durations.FORMS}.",
    }
)

# A span of time in the one grammar of `_durations`, kept as the text the person
# wrote; a field adds its own limits (at least a minute, say) in a validator.
Duration = Annotated[str, BeforeValidator(_as_text), Strict(), _span(zero=False), _SPAN_SCHEMA]
# The same, where 0s means "none" (a cooldown of 0s: no cooldown).
DurationOrZero = Annotated[str, BeforeValidator(_as_text), Strict(), _span(zero=True), _SPAN_SCHEMA]


# -- schemas --------------------------------------------------------------------------


def document_class(name: str) -> type[Document]:
    """The model of the document called ``name`` (spec, contract, policy, monitor)."""
    if name not in DOCUMENTS:
        close = difflib.get_close_matches(name, DOCUMENTS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"no document called {name!r}; {hint}the files setpoint reads are "
            f"{', '.join(DOCUMENTS)}"
        )
    module, attribute = DOCUMENTS[name]
    cls: type[Document] = getattr(importlib.import_module(module), attribute)
    return cls


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document ``name``, from its model."""
    cls = document_class(name)
    return {"$schema": _DIALECT, **_tidy(cls.model_json_schema())}


def _tidy(node: Any) -> Any:
    """Descriptions on one line each (they come from wrapped docstrings)."""
    if isinstance(node, dict):
        return {
            key: " ".join(value.split())
            if key == "description" and isinstance(value, str)
            else _tidy(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_tidy(value) for value in node]
    return node


def schema_text(name: str) -> str:
    """The schema as the shipped ``.schema.json`` file holds it."""
    return json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"


def schema_path(name: str) -> Path:
    """Where the installed package keeps the schema of ``name``."""
    document_class(name)  # a clear error for an unknown name
    return _SCHEMAS / f"{name}.schema.json"


def editor_line(name: str) -> str:
    """The first line of a file setpoint writes, pointing editors at its schema."""
    return f"# yaml-language-server: $schema={schema_path(name).as_uri()}\n"
