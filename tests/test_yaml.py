"""YAML syntax errors name where they are: ``SOURCE:LINE:COLUMN: problem``."""

from __future__ import annotations

import pytest

from setpoint._yaml import load_user_yaml
from setpoint.data.contract import Contract
from setpoint.errors import InvalidSpecError, UsageError
from setpoint.loop.policy import Policy
from setpoint.models.spec import TrainSpec


def test_text_not_from_a_file_is_called_text() -> None:
    with pytest.raises(UsageError) as caught:
        Policy.from_yaml("triggers: [drift_share: 0.3\ncooldown: 1d\n")
    message = caught.value.message
    assert message.startswith("<text>:2:9: expected ',' or ']', but got ':'"), message
    assert "while parsing a flow sequence at line 1, column 11" in message
    assert "the policy is not valid YAML" in message
    assert "unicode string" not in message


@pytest.mark.parametrize("load", [TrainSpec.from_yaml, Contract.from_yaml])
def test_specs_and_contracts_name_the_source(load: object) -> None:
    with pytest.raises(InvalidSpecError, match=r"^spec\.yaml:2:4: ") as caught:
        load("a: 1\n  b: 2\n", source="spec.yaml")  # type: ignore[operator]
    assert caught.value.details == [caught.value.message.split(" (")[0]]


def test_a_character_yaml_refuses_is_placed_too() -> None:
    with pytest.raises(UsageError, match=r"^p\.yaml:2:4: character #x0007: "):
        load_user_yaml("a: 1\nb: \x07\n", what="the policy", source="p.yaml")
