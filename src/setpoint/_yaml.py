"""Reading YAML that a person wrote (training specs, contracts, policies).

PyYAML's own message points at ``"<unicode string>"`` and spreads over several lines.
A person needs the file, the line and the column, in the ``FILE:LINE:COLUMN:`` form
editors and terminals turn into a link, so every loader of user YAML goes through
:func:`load_user_yaml`.
"""

from __future__ import annotations

from typing import Any

import yaml

from setpoint.errors import SetpointError, UsageError

TEXT = "<text>"  # where YAML that did not come from a file is said to be


def load_user_yaml(
    text: str,
    *,
    what: str,
    source: str | None = None,
    error: type[SetpointError] = UsageError,
) -> Any:
    """``text`` parsed, or ``error`` saying ``SOURCE:LINE:COLUMN: problem``.

    ``what`` names the document (``the policy``); ``source`` is the file it was read
    from, or None for text given directly."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = describe(exc, text, source)
        raise error(f"{where} ({what} is not valid YAML)", details=[where]) from None


def describe(error: yaml.YAMLError, text: str, source: str | None = None) -> str:
    """``SOURCE:LINE:COLUMN: problem`` for a YAML error, line and column from 1."""
    where = source or TEXT
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        message = f"{where}:{mark.line + 1}:{mark.column + 1}: {error.problem or 'not valid YAML'}"
        context = error.context_mark
        if error.context and context is not None and context.line != mark.line:
            message += f" ({error.context} at line {context.line + 1}, column {context.column + 1})"
        return message
    if isinstance(error, yaml.reader.ReaderError):
        before = text[: error.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        char = error.character
        code = char if isinstance(char, int) else ord(char)
        return f"{where}:{line}:{column}: character #x{code:04x}: {error.reason}"
    return f"{where}: {error}"


def locate(text: str, steps: tuple[str | int, ...], source: str | None = None) -> str:
    """``SOURCE:LINE:COLUMN`` of the value at ``steps`` (keys and indexes) in ``text``,
    or of the nearest enclosing one that exists; an unknown key is found at its key."""
    return where(source, position(compose(text), steps))


def compose(text: str) -> yaml.Node | None:
    """``text``'s YAML node tree (with line and column marks), or None if it has none."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def position(root: yaml.Node | None, steps: tuple[str | int, ...]) -> tuple[int, int] | None:
    """(line, column), from 1, of the place ``steps`` leads to in ``root`` (see
    :func:`locate`), or None without a tree."""
    node = root
    mark = node.start_mark if node is not None else None
    for step in steps:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                    child, mark = value, key.start_mark
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(step, int)
            and 0 <= step < len(node.value)
        ):
            child = node.value[step]
            mark = child.start_mark
        if child is None:
            break
        node = child
    return None if mark is None else (mark.line + 1, mark.column + 1)


def where(source: str | None, at: tuple[int, int] | None) -> str:
    """``SOURCE:LINE:COLUMN`` (or the source alone without a position)."""
    name = source or TEXT
    return name if at is None else f"{name}:{at[0]}:{at[1]}"
