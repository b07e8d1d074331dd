"""Names and references: ``loans``, ``loans@3``, ``loans@latest``, ``credit@champion``;
for models also MLflow's ``models:/credit@champion`` and ``models:/credit/3``."""

from __future__ import annotations

import re

from setpoint.errors import UsageError

# fullmatch, not match with ^...$: "$" also matches before a final newline.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
LATEST = "latest"


def check_name(kind: str, name: str) -> str:
    """``name`` as given, when it is a valid name of ``kind``. Names are not folded
    to lowercase: a stored name has one spelling, so a capitalised one is refused with
    the lowercase spelling to use instead."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        details = {"kind": kind, "name": name}
        if isinstance(name, str) and _NAME.fullmatch(name.lower()):
            raise UsageError(
                f"{name!r} is not a valid {kind} name: names are lowercase; "
                f"did you mean {name.lower()!r}?",
                details=details,
            )
        raise UsageError(
            f"{name!r} is not a valid {kind} name: names are lowercase; use 1 to 100 "
            "letters a-z, digits, '.', '_' or '-', starting with a letter or digit "
            "(e.g. 'loans-2024')",
            details=details,
        )
    return name


# MLflow spells a model reference as a URI; people coming from MLflow type it by habit.
MLFLOW_PREFIX = "models:/"
_MLFLOW_URI = re.compile(r"models:/([^/@]+)(?:@([^/@]+)|/([0-9]+|latest))?")


def _from_mlflow(ref: str) -> str:
    """``models:/NAME@ALIAS`` as ``NAME@ALIAS``, ``models:/NAME/VERSION`` as
    ``NAME@VERSION`` (and ``models:/NAME`` as ``NAME``)."""
    match = _MLFLOW_URI.fullmatch(ref)
    if match is None:
        raise UsageError(
            f"{ref!r} is not a model reference: write models:/NAME@ALIAS or "
            "models:/NAME/VERSION (MLflow's spelling), or NAME@ALIAS or NAME@VERSION, "
            "e.g. models:/credit-risk@champion or credit-risk@3",
            details={"kind": "model", "reference": ref},
        )
    name, alias, version = match.groups()
    selector = alias or version
    return f"{name}@{selector}" if selector else name


def split_ref(kind: str, ref: str) -> tuple[str, str | None]:
    """``NAME[@SELECTOR]`` into the name and the selector (None when absent). Every
    model reference is read here, so MLflow's spelling works wherever one is taken."""
    if kind == "model" and isinstance(ref, str) and ref.startswith(MLFLOW_PREFIX):
        ref = _from_mlflow(ref)
    name, at, selector = ref.partition("@")
    check_name(kind, name)
    if at and not selector:
        raise UsageError(
            f"{ref!r}: nothing after '@'; write {name}@VERSION or {name}@{LATEST}",
        )
    return name, (selector or None)


def canonical_ref(kind: str, ref: str) -> str:
    """``ref`` checked and in setpoint's own spelling (``NAME`` or ``NAME@SELECTOR``):
    what is stored and shown, whichever spelling the user typed."""
    name, selector = split_ref(kind, ref)
    return name if selector is None else f"{name}@{selector}"


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
