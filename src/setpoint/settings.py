"""Every setting, declared once.

A setting has a name, a type, a default and a help text. Its value comes from, in
order of precedence: an explicit value (a CLI flag or a keyword argument), the
environment variable ``SETPOINT_<NAME>``, the ``setpoint.toml`` file at the root of
the workspace, and finally the default. The CLI, the environment, the settings file
and ``docs/settings.md`` all read this one registry; a test checks that each setting
is documented. A malformed value fails at start-up, naming the setting and where the
value came from.
"""

from __future__ import annotations

import getpass
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.errors import ConfigError

SETTINGS_FILE = "setpoint.toml"
ENV_PREFIX = "SETPOINT_"


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return "unknown"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        str,
        "",
        "SQLAlchemy URL of the metadata store. Empty means the SQLite file "
        "`setpoint.db` inside the workspace. Example: "
        "`postgresql+psycopg://user@host:5432/setpoint`.",
    ),
    Setting(
        "artifacts_uri",
        str,
        "",
        "Where model artifacts are stored: a folder or an fsspec URI. Empty means "
        "`artifacts/` inside the workspace.",
    ),
    Setting(
        "data_uri",
        str,
        "",
        "Where dataset versions and quarantined rows are stored: a folder or an fsspec "
        "URI. Empty means `data/` inside the workspace.",
    ),
    Setting(
        "log_uri",
        str,
        "",
        "Where the prediction log is shared between machines: an fsspec URI such as "
        "`s3://BUCKET/PREFIX`. Each process writes and fsyncs its segments in `logs/` "
        "inside the workspace and moves each sealed segment there; readers see both. "
        "Empty keeps the log in `logs/` only (one machine, or a folder they share).",
    ),
    Setting(
        "log_seal_seconds",
        float,
        60.0,
        "With log_uri: the longest a segment of the log stays open before it is sealed "
        "and moved there, so other machines see a record within about this long.",
    ),
    Setting(
        "actor",
        str,
        None,
        "Who is acting, as written in the audit log and as dataset owner by default. "
        "Defaults to the operating-system user.",
    ),
    Setting(
        "range_tolerance",
        float,
        0.1,
        "Widening of inferred contract ranges, as a fraction of (max - min) on each "
        "side: 0.1 accepts values up to 10% of the training range beyond it. 0 makes "
        "the training range itself the limit.",
    ),
    Setting(
        "max_categories",
        int,
        50,
        "A text column with at most this many distinct values is inferred as "
        "categorical (its values become the allowed categories).",
    ),
    Setting(
        "unknown_columns",
        str,
        "reject",
        "What inferred contracts do with columns they do not declare.",
        choices=("reject", "drop", "allow"),
    ),
    Setting(
        "validation_mode",
        str,
        "reject",
        "Default mode of `setpoint data validate`: reject the whole batch, quarantine "
        "the invalid rows, or only warn.",
        choices=("reject", "quarantine", "warn"),
    ),
    Setting(
        "max_request_bytes",
        int,
        4 * 1024 * 1024,
        "Largest HTTP request body the server reads; larger ones get 413.",
    ),
    Setting(
        "body_timeout_seconds",
        float,
        30.0,
        "Longest the server waits for a request's whole body once its headers arrived; "
        "a client that sends it slower (or stalls) gets 408 and its connection back. "
        "0 waits for ever.",
    ),
    Setting(
        "refresh_seconds",
        float,
        2.0,
        "How often a running server re-reads its deployments and model aliases, so that "
        "a promotion or a deploy takes effect within this many seconds.",
    ),
    Setting(
        "require_keys",
        bool,
        False,
        "`setpoint serve` answers only requests with a valid API key, even before the "
        "workspace has one (until `setpoint keys create`, every request gets 401). A "
        "workspace that has ever had a key, revoked or not, needs one anyway, and so "
        "does a server listening beyond loopback without `--insecure`.",
    ),
    Setting(
        "cpu_hour_price",
        float,
        0.031611,
        "Price of one core for one hour, for the cost per 1,000 predictions that "
        "`setpoint monitor show`, the report, `/metrics`, `setpoint loadtest` and "
        "`setpoint optimize` give. "
        "The default is a public cloud's on-demand price of a general-purpose vCPU-hour "
        "(US$; docs/monitoring.md#cost says which); set your own, in any currency.",
    ),
    Setting(
        "gb_hour_price",
        float,
        0.004237,
        "Price of one GB of memory held for one hour, in the currency of "
        "`cpu_hour_price` (the default: the same public cloud's on-demand price).",
    ),
    Setting(
        "sqlite_busy_timeout",
        float,
        30.0,
        "Seconds a SQLite writer waits for another writer before giving up.",
    ),
)

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    try:
        if setting.type is bool and isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            value: Any = lowered in {"1", "true", "yes"}
        elif setting.type is float and isinstance(raw, bool):
            raise ValueError(raw)
        else:
            value = setting.type(raw)
        if setting.type in (int, float) and not (math.isfinite(value) and value >= 0):
            raise ValueError(raw)  # every number setting is a size, a share or a time
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {setting.name!r} from {source} must be "
            + (
                f"a finite {setting.type.__name__} of 0 or more"
                if setting.type in (int, float)
                else f"a {setting.type.__name__}"
            )
            + f", got {raw!r}",
            details={"setting": setting.name, "source": source},
        ) from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"setting {setting.name!r} from {source} must be one of "
            f"{', '.join(setting.choices)}; got {value!r}",
            details={"setting": setting.name, "source": source},
        )
    return value


def read_settings_file(path: Path) -> dict[str, Any]:
    """The ``[setpoint]`` table of a settings file; unknown keys are an error."""
    if not path.is_file():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    table = document.get("setpoint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [setpoint] must be a table of settings")
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; "
            f"known settings are {', '.join(_BY_NAME)}",
            details={"unknown": unknown},
        )
    return table


@dataclass(frozen=True)
class ResolvedSetting:
    value: Any
    source: str  # "flag", "env", "file" or "default"


class Settings:
    """The effective settings of one workspace, with where each value came from."""

    def __init__(self, resolved: Mapping[str, ResolvedSetting]) -> None:
        self._resolved = dict(resolved)

    @classmethod
    def resolve(
        cls,
        workspace: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = sorted(set(overrides) - set(_BY_NAME))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        env = os.environ if environ is None else environ
        file_values = read_settings_file(workspace / SETTINGS_FILE) if workspace else {}
        resolved: dict[str, ResolvedSetting] = {}
        for setting in SETTINGS:
            candidates = (
                ("flag", overrides.get(setting.name), "the command line"),
                ("env", env.get(setting.env), setting.env),
                ("file", file_values.get(setting.name), SETTINGS_FILE),
            )
            for source, raw, label in candidates:
                if raw is not None:
                    resolved[setting.name] = ResolvedSetting(_coerce(setting, raw, label), source)
                    break
            else:
                default = _default_actor() if setting.name == "actor" else setting.default
                resolved[setting.name] = ResolvedSetting(default, "default")
        return cls(resolved)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._resolved[name].value
        except KeyError:
            raise AttributeError(name) from None

    def source(self, name: str) -> str:
        return self._resolved[name].source

    def items(self) -> list[tuple[Setting, ResolvedSetting]]:
        return [(s, self._resolved[s.name]) for s in SETTINGS]

    def to_dict(self) -> dict[str, Any]:
        return {name: r.value for name, r in self._resolved.items()}


def render_docs() -> str:
    """The reference table in ``docs/settings.md``, generated from the registry."""
    lines = [
        "| setting | environment variable | type | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = "(OS user)" if s.name == "actor" else repr(s.default)
        kind = " \\| ".join(s.choices) if s.choices else s.type.__name__
        lines.append(f"| `{s.name}` | `{s.env}` | {kind} | `{default}` | {s.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # regenerate the table in docs/settings.md
    print(render_docs(), end="")
