"""Every document a test reads is also checked against its published JSON Schema.

The schemas are for editors and CI pipelines that never run setpoint: whatever the
reader accepts, the schema must accept too. Rather than keep a second list of the
YAML the tests write, the reader itself is watched for the whole run: each spec,
contract, policy or monitor settings file read successfully, in any test, is
validated with the ``jsonschema`` package, and a mismatch fails that test.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema

from setpoint import _documents

CHECKED: Counter[str] = Counter()


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = _documents.schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check(name: str, data: Any) -> None:
    """Fail when the schema of ``name`` refuses ``data`` (as YAML or JSON would hold it)."""
    plain = json.loads(json.dumps(data, default=str))
    errors = sorted(validator(name).iter_errors(plain), key=lambda e: list(e.path))
    if errors:
        where = "; ".join(f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors)
        raise AssertionError(f"the {name} schema refuses what the reader accepted: {where}")
    CHECKED[name] += 1


@contextmanager
def watching() -> Iterator[None]:
    """While open, every document read is checked against its schema too."""
    names = {attribute: name for name, (_, attribute) in _documents.DOCUMENTS.items()}
    read = _documents.Document.__dict__["_read"].__func__

    def checked(cls: type[_documents.Document], data: Any, text: Any, source: Any) -> Any:
        document = read(cls, data, text, source)
        name = names.get(cls.__name__)
        if name is not None and _documents.document_class(name) is cls:
            check(name, data)
        return document

    _documents.Document._read = classmethod(checked)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        _documents.Document._read = classmethod(read)  # type: ignore[assignment,method-assign]
