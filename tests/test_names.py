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
