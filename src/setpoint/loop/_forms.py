"""A JSON Schema for fields that also take a shorthand: the stored form's schema, as
pydantic makes it from the field's type, or any of the shorthands the field's
``BeforeValidator`` turns into it (``actions: alert`` for ``[alert]``)."""

from __future__ import annotations

from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = ["AlsoAccepts"]


class AlsoAccepts:
    """``Annotated[T, BeforeValidator(...), AlsoAccepts({...}, ...)]``: the schema of
    ``T`` or one of ``shorthands``."""

    def __init__(self, *shorthands: dict[str, Any]) -> None:
        self.shorthands = shorthands

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(core_schema), *self.shorthands]}
