"""The files people write are pydantic models: every problem at once, by path, in the
project's error, and a FILE:LINE:COLUMN for each when the YAML came from a file."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field, model_validator

from setpoint import _documents
from setpoint._documents import (
    Document,
    Duration,
    DurationOrZero,
    Flag,
    Number,
    Problems,
    Text,
    Whole,
)
from setpoint._yaml import locate
from setpoint.errors import InvalidSpecError, UsageError


class Inner(Document):
    what: ClassVar[str] = "the inner part"

    size: Whole = Field(1, ge=1)
    """How many."""


class Outer(Document):
    what: ClassVar[str] = "the test file"
    error: ClassVar[type[InvalidSpecError]] = InvalidSpecError

    name: Text
    """A name."""
    share: Number = Field(0.5, gt=0, le=1)
    on: Flag = True
    every: Duration = "1d"
    cooldown: DurationOrZero = "0s"
    inner: Inner = Field(default_factory=Inner)
    parts: tuple[Inner, ...] = ()

    @model_validator(mode="after")
    def _share_needs_parts(self) -> Outer:
        if self.share < 0.1 and not self.parts:
            raise Problems([(("share",), "a share below 0.1 needs parts")])
        return self


def problems(call: object) -> list[str]:
    with pytest.raises(InvalidSpecError) as caught:
        call()  # type: ignore[operator]
    details = caught.value.details
    assert isinstance(details, list)
    return details


def test_every_problem_is_reported_at_once_by_path() -> None:
    lines = problems(
        lambda: Outer.read(
            {
                "share": "0.3",
                "on": 1,
                "every": "weekly",
                "inner": {"size": 0, "sise": 2},
                "parts": [{"size": 2}, {"size": True}],
            }
        )
    )
    assert lines == [
        "name: is required",
        "share: must be a number, got '0.3'",
        "on: must be true or false, got 1",
        "every: 'weekly' is not a span of time; write a number and a unit (s, m, h, d or w),"
        " e.g. 30s, 5m, 1.5h, 7d or 1h30m",
        "inner.size: must be greater than or equal to 1, got 0",
        "inner.sise: unknown key; did you mean 'size'? valid keys are size",
        "parts[1].size: must be a whole number, got True",
    ]


def test_an_unknown_key_gets_the_closest_valid_one() -> None:
    (line,) = problems(lambda: Outer.read({"name": "a", "shar": 0.2}))
    assert line == (
        "shar: unknown key; did you mean 'share'? valid keys are name, share, on, every, "
        "cooldown, inner, parts"
    )


def test_a_model_validator_reports_at_its_own_path() -> None:
    assert problems(lambda: Outer.read({"name": "a", "share": 0.05})) == [
        "share: a share below 0.1 needs parts"
    ]


def test_python_keywords_report_the_same_way() -> None:
    with pytest.raises(InvalidSpecError, match=r"the test file: inner\.size: must be greater"):
        Outer(name="a", inner={"size": 0})
    with pytest.raises(UsageError, match="the inner part: size: must be a whole number"):
        Inner(size="many")


def test_spans_of_time_use_the_one_grammar() -> None:
    assert Outer.read({"name": "a", "every": "1h30m", "cooldown": "0s"}).every == "1h30m"
    (line,) = problems(lambda: Outer.read({"name": "a", "every": "0s"}))
    assert line.startswith("every: '0s' must be a positive span of time")
    (line,) = problems(lambda: Outer.read({"name": "a", "every": 60}))
    assert line.startswith("every: '60' is not a span of time")


def test_a_file_names_the_line_and_column_of_each_problem() -> None:
    text = "name: a\ninner:\n  sise: 2\nparts:\n  - size: 1\n  - size: x\nshare: 3\n"
    with pytest.raises(InvalidSpecError) as caught:
        Outer.read_yaml(text, source="t.yaml")
    assert caught.value.details == [
        "t.yaml:3:3: inner.sise: unknown key; did you mean 'size'? valid keys are size",
        "t.yaml:6:5: parts[1].size: must be a whole number, got 'x'",
        "t.yaml:7:1: share: must be less than or equal to 1, got 3",
    ]
    assert caught.value.listing == (
        "t.yaml (the test file) has 3 problems",
        tuple(caught.value.details),
    )
    with pytest.raises(InvalidSpecError, match=r"^t\.yaml:1:1: share: must be"):
        Outer.read_yaml("share: 3\nname: a\n", source="t.yaml")


def test_a_file_that_is_not_a_mapping_says_so() -> None:
    with pytest.raises(InvalidSpecError, match=r"t\.yaml: the test file is a mapping of keys to"):
        Outer.read_yaml("- a\n", source="t.yaml")
    assert Inner.read_yaml("") == Inner()  # an empty file is every default


def test_locate_falls_back_to_the_nearest_enclosing_place() -> None:
    text = "a:\n  b: [1, 2]\n"
    assert locate(text, ("a", "b", 1), "f") == "f:2:10"
    assert locate(text, ("a", "c"), "f") == "f:1:1"
    assert locate("a: [", ("a",), None) == "<text>"


def test_schemas_are_json_schema_draft_2020_12_with_one_line_descriptions() -> None:
    body = _documents.schema("monitor")
    assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert body["additionalProperties"] is False
    assert "\n" not in body["properties"]["drift"]["description"]


def test_an_unknown_document_name_gets_a_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean 'policy'"):
        _documents.schema("polcy")


def test_the_test_run_checks_what_it_reads_against_the_schemas() -> None:
    from documents_support import CHECKED, check
    from setpoint.monitoring.settings import MonitorConfig

    before = CHECKED["monitor"]
    MonitorConfig.read({"window": "2h"})
    assert CHECKED["monitor"] == before + 1
    with pytest.raises(AssertionError, match="the monitor schema refuses"):
        check("monitor", {"window": "2h", "windw": 1})
