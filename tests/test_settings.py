from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.errors import ConfigError
from setpoint.settings import SETTINGS, SETTINGS_FILE, Settings, render_docs

ROOT = Path(__file__).resolve().parents[1]


def test_precedence_is_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text(
        '[setpoint]\nrange_tolerance = 0.2\nmax_categories = 10\nunknown_columns = "drop"\n'
    )
    env = {"SETPOINT_MAX_CATEGORIES": "20", "SETPOINT_UNKNOWN_COLUMNS": "allow"}
    s = Settings.resolve(tmp_path, {"unknown_columns": "reject"}, environ=env)
    assert (s.unknown_columns, s.source("unknown_columns")) == ("reject", "flag")
    assert (s.max_categories, s.source("max_categories")) == (20, "env")
    assert (s.range_tolerance, s.source("range_tolerance")) == (0.2, "file")
    assert (s.validation_mode, s.source("validation_mode")) == ("reject", "default")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SETPOINT_MAX_CATEGORIES": "many"},
            "'max_categories' from SETPOINT_MAX_CATEGORIES must be a finite int of 0 or more",
        ),
        ({"SETPOINT_RANGE_TOLERANCE": "nan"}, "'range_tolerance' .* must be a finite float"),
        ({"SETPOINT_RANGE_TOLERANCE": "inf"}, "must be a finite float"),
        ({"SETPOINT_SQLITE_BUSY_TIMEOUT": "-1"}, "of 0 or more"),
        ({"SETPOINT_VALIDATION_MODE": "drop"}, "must be one of reject, quarantine, warn"),
    ],
)
def test_a_malformed_setting_names_itself(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.resolve(tmp_path, environ=env)


def test_unknown_keys_in_the_settings_file_fail_loudly(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("[setpoint]\nrange_tolerence = 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*range_tolerence"):
        Settings.resolve(tmp_path, environ={})


def test_a_broken_settings_file_is_named(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("[setpoint\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.resolve(tmp_path, environ={})


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text()
    assert render_docs() in docs, "regenerate the table: python -m setpoint.settings"
    for setting in SETTINGS:
        assert f"`{setting.env}`" in docs
