"""Personal data outside the dataset store: a keyed hash, or nothing at all.

A column a contract marks ``pii`` keeps its values in clear only in the dataset
version itself. Everything else setpoint writes (the prediction log, the refused log,
quarantined rows, backfilled traffic) keeps instead, per column:

- ``hash`` (what ``pii: true`` means): ``pii:`` and the first 32 hex digits of the
  HMAC-SHA256 of the value's canonical text under the workspace's secret. One value
  always gives one hash in a workspace, so joins and erasure still find its rows;
  without the secret, nobody can tell which value a hash stands for by trying them.
- ``drop``: the column is left out.

The secret is 32 random bytes in ``<workspace>/secrets/pii.key``, made on first use
(mode 0600, its folder 0700) and never copied into the metadata store. Whoever can read
it can test guesses against the hashes: keep it with the workspace's other secrets.
Values are hashed by their canonical text, so ``123``, ``123.0`` and ``"123"`` (a
number from JSON, a float from Parquet, text from a CSV or the command line) are one
value, as a person means them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from setpoint.errors import StoreError

if TYPE_CHECKING:
    from setpoint.data.contract import Contract

PiiMode = Literal["hash", "drop"]
PII_MODES: tuple[str, ...] = ("hash", "drop")
SECRET_FILE = Path("secrets") / "pii.key"
PREFIX = "pii:"
_SECRET_BYTES = 32


def workspace_secret(root: Path, file: Path = SECRET_FILE) -> bytes:
    """The workspace's secret in ``file`` (the PII secret by default; the dashboard
    signs its sessions with another), made on first use. Two processes making it at once
    agree, and a crash never leaves a partial secret: it is written whole to a file of
    its own, then linked to its name, which fails if another process linked first (the
    loser reads the winner's secret, complete from the moment it has its name)."""
    path = root / file
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(_SECRET_BYTES)
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=".pii-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp makes it 0600
            out.write(secret)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(staged, path)
        except FileExistsError:
            return _read(path)
        _fsync_dir(path.parent)
        return secret
    finally:
        os.unlink(staged)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) != _SECRET_BYTES:
        raise StoreError(
            f"{path} holds {len(secret)} bytes, not a secret of {_SECRET_BYTES}; restore it "
            "from a backup (hashes and sessions made with another secret no longer match)"
        )
    return secret


def canonical(value: Any) -> str:
    """The text a value is hashed by: integral numbers without a fraction, booleans
    as ``true``/``false``, everything else as its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class PiiPolicy:
    """How each personal-data column is kept outside the dataset store."""

    modes: Mapping[str, PiiMode] = field(default_factory=dict)  # column -> hash | drop
    secret: bytes = b""

    @classmethod
    def of(cls, contract: Contract, secret: bytes) -> PiiPolicy:
        modes: dict[str, PiiMode] = {
            name: rule.pii_mode for name, rule in contract.columns.items() if rule.pii
        }
        return cls(modes, secret)

    @cached_property
    def columns(self) -> frozenset[str]:
        return frozenset(self.modes)

    @cached_property
    def _hmac(self) -> Any:
        return hmac.new(self.secret, digestmod=hashlib.sha256)

    def hash(self, value: Any) -> str | None:
        """The keyed hash of one value (a missing value stays missing)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        mac = self._hmac.copy()
        mac.update(canonical(value).encode())
        digest: str = mac.hexdigest()
        return PREFIX + digest[:32]

    def record(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` (column -> value) as they may be stored outside the dataset."""
        out = {}
        for name, value in inputs.items():
            mode = self.modes.get(name)
            if mode is None:
                out[name] = value
            elif mode == "hash":
                out[name] = self.hash(value)
        return out

    def table(self, table: pa.Table) -> pa.Table:
        """``table`` with its personal-data columns hashed (as text) or left out."""
        for name in [n for n in table.column_names if n in self.modes]:
            index = table.column_names.index(name)
            if self.modes[name] == "drop":
                table = table.remove_column(index)
                continue
            values = [self.hash(v) for v in table.column(name).to_pylist()]
            table = table.set_column(index, name, pa.array(values, pa.string()))
        return table
