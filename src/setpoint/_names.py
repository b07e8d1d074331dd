"""Names and references: ``loans``, ``loans@3``, ``loans@latest``, ``credit@champion``."""

from __future__ import annotations

import re

from setpoint.errors import UsageError

# fullmatch, not match with ^...$: "$" also matches before a final newline.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
LATEST = "latest"


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid {kind} name: use 1 to 100 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (e.g. 'loans-2024')",
            details={"kind": kind, "name": name},
        )
    return name


def split_ref(kind: str, ref: str) -> tuple[str, str | None]:
    """``NAME[@SELECTOR]`` into the name and the selector (None when absent)."""
    name, at, selector = ref.partition("@")
    check_name(kind, name)
    if at and not selector:
        raise UsageError(
            f"{ref!r}: nothing after '@'; write {name}@VERSION or {name}@{LATEST}",
        )
    return name, (selector or None)


MAX_VERSION = 2**31 - 1  # fits every database's INTEGER


def check_number(kind: str, number: int) -> int:
    """A version or id given as a number, within what the store can hold."""
    if not 1 <= number <= MAX_VERSION:
        raise UsageError(f"{kind} {number}: give a number from 1 to {MAX_VERSION}")
    return number


def version_number(ref: str, selector: str) -> int | None:
    """The version a selector names, or None when it is not a number (an alias, latest)."""
    if not selector.isdigit():
        return None
    number = int(selector)
    if not 1 <= number <= MAX_VERSION:
        raise UsageError(f"{ref!r}: versions are numbered from 1 to {MAX_VERSION}")
    return number
