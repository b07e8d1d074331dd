from __future__ import annotations

import inspect

import pytest

from setpoint import errors
from setpoint.errors import SetpointError

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, SetpointError)
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_has_the_one_json_shape(cls: type[SetpointError]) -> None:
    error = cls("what went wrong and how to fix it", details={"column": "age"})
    assert error.to_dict() == {
        "error": {
            "code": cls.code,
            "message": "what went wrong and how to fix it",
            "details": {"column": "age"},
        }
    }
    assert 400 <= cls.http_status < 600
    assert cls.exit_code != 0


def test_codes_are_unique_and_stable() -> None:
    codes = {cls.code: cls.__name__ for cls in ERROR_CLASSES}
    assert len(codes) == len(ERROR_CLASSES)
    # Clients match on these strings: changing one is a breaking change.
    assert codes["contract_violation"] == "ContractViolationError"
    assert codes["not_found"] == "NotFoundError"
    assert codes["artifact_corrupted"] == "ArtifactCorruptedError"
