"""Names of datasets, models, endpoints, aliases and log kinds: the whole text is
checked, so a name cannot smuggle a trailing newline past the check (``^...$`` lets
``$`` match before a final ``\\n``)."""

from __future__ import annotations

import pandas as pd
import pytest

from setpoint._names import check_name, split_ref
from setpoint.errors import UsageError
from setpoint.workspace import Workspace

KINDS = ("dataset", "model", "endpoint", "alias", "log kind")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["bc3\n", "bc3\r\n", "\nbc3", "bc3\n\n"])
def test_a_name_with_a_newline_is_refused(kind: str, name: str) -> None:
    with pytest.raises(UsageError, match="not a valid"):
        check_name(kind, name)


def test_a_reference_with_a_newline_in_its_name_is_refused() -> None:
    with pytest.raises(UsageError, match="not a valid"):
        split_ref("model", "bc3\n@champion")


def test_a_good_name_still_passes() -> None:
    assert check_name("endpoint", "bc3") == "bc3"


def test_the_workspace_refuses_an_endpoint_and_a_dataset_ending_in_a_newline(
    tmp_path: object,
) -> None:
    from pathlib import Path

    ws = Workspace.init(Path(str(tmp_path)) / "ws", actor="tester")
    try:
        with pytest.raises(UsageError, match="not a valid endpoint name"):
            ws.deploy("bc3\n", model="m@1")
        with pytest.raises(UsageError, match="not a valid dataset name"):
            ws.add_dataset("loans\n", pd.DataFrame({"a": [1, 2]}))
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/credit-risk@champion", ("credit-risk", "champion")),
        ("models:/credit-risk/3", ("credit-risk", "3")),
        ("models:/credit-risk/latest", ("credit-risk", "latest")),
        ("models:/credit-risk", ("credit-risk", None)),
        ("credit-risk@3", ("credit-risk", "3")),
    ],
)
def test_mlflow_model_uris_are_synonyms_of_references(
    ref: str, expected: tuple[str, str | None]
) -> None:
    assert split_ref("model", ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "models:/",
        "models:/risk/",
        "models:/risk@",
        "models:/risk/1/2",
        "models:/risk/Production",
        "models:/risk@champion/1",
        "models://risk/1",
    ],
)
def test_a_malformed_mlflow_uri_shows_the_accepted_forms(ref: str) -> None:
    with pytest.raises(UsageError) as raised:
        split_ref("model", ref)
    message = raised.value.message
    assert ref in message
    for form in ("models:/NAME@ALIAS", "models:/NAME/VERSION", "NAME@ALIAS", "NAME@VERSION"):
        assert form in message, message


def test_an_mlflow_uri_is_no_dataset_reference() -> None:
    with pytest.raises(UsageError, match="not a valid dataset name"):
        split_ref("dataset", "models:/loans/1")


@pytest.mark.parametrize("kind", KINDS)
def test_a_capitalised_name_is_refused_with_its_lowercase_spelling(kind: str) -> None:
    with pytest.raises(UsageError) as raised:
        check_name(kind, "Credit-Risk")
    assert raised.value.message.startswith(
        f"'Credit-Risk' is not a valid {kind} name: names are lowercase; "
        "did you mean 'credit-risk'?"
    )


def test_a_name_wrong_beyond_its_case_still_says_names_are_lowercase() -> None:
    with pytest.raises(UsageError) as raised:
        check_name("dataset", "Bad Name!")
    assert "not a valid dataset name: names are lowercase;" in raised.value.message
    assert "did you mean" not in raised.value.message


def test_a_capitalised_name_in_a_reference_gets_the_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean 'credit-risk'"):
        split_ref("model", "models:/Credit-Risk/1")
