"""Tree ensembles compiled to native code: a shared library built with the system C
compiler by treelite and tl2cgen when ``setpoint optimize`` runs.

The library is the version's artifact, so serving loads it without a compiler. It
runs only where it was built: the platform (machine, OS, C library) is in the
metadata and a load elsewhere is a :class:`~setpoint.errors.PlatformMismatchError`
naming the fix. The Python version is recorded too, for the reader, but not checked:
the library is plain C called through ctypes, not a Python extension.

The compiled code computes in double precision, as LightGBM does, so its
probabilities agree with the original to the last bits.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import os
import platform
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from setpoint.errors import (
    ArtifactCorruptedError,
    DependencyMissingError,
    PlatformMismatchError,
    StoreError,
)
from setpoint.models.flavors._encoded import EncodedPredictor
from setpoint.models.flavors._trees import FloatArray, optional_import
from setpoint.models.predictor import BasePredictor

_EXTRA = "optimize"
# Up to this many rows are predicted by calling the library once per row (_RowCalls),
# more through tl2cgen's batch predictor.
_ROW_CALLS = 16


def current_platform() -> dict[str, str]:
    """What a compiled library depends on, and the Python it was built under."""
    libc, libc_version = platform.libc_ver()
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "libc": f"{libc} {libc_version}".strip(),
        "python": platform.python_version(),
    }


class CompiledPredictor(EncodedPredictor):
    """A shared library from tl2cgen, loaded with one thread (serving runs one model call
    per worker at a time)."""

    flavor = "compiled"
    libraries = ("tl2cgen", "treelite", "numpy")

    def __init__(self, library: bytes, built_on: Mapping[str, str], **fields: Any) -> None:
        super().__init__(**fields)
        self.library = library
        self.built_on = dict(built_on)
        check_platform(self.built_on)
        tl2cgen = _import_tl2cgen()
        path = _library_file(library)
        try:
            self._predictor = tl2cgen.Predictor(path, nthread=1)
        except (OSError, tl2cgen.TL2cgenError) as exc:
            raise ArtifactCorruptedError(
                f"the compiled model cannot be loaded from {path} ({exc}); it is damaged or "
                "was not written by the compiled flavor, or the temporary folder does not "
                "allow loading code from it (point TMPDIR at one that does)"
            ) from exc
        self._dmatrix = tl2cgen.DMatrix
        self._rows = _RowCalls(path)

    @classmethod
    def compile(cls, original: BasePredictor, booster: Any) -> Self:
        """``original``'s LightGBM ``booster`` compiled here with the system C compiler."""
        tl2cgen = _import_tl2cgen()
        treelite = optional_import("treelite", package="treelite", extra=_EXTRA)
        if shutil.which("gcc") is None:
            raise DependencyMissingError(
                "compiling a model needs a C compiler (gcc) on the PATH; install one "
                "(e.g. the build-essential package) or leave out the compiled candidate",
                details={"package": "gcc"},
            )
        model = treelite.frontend.from_lightgbm(booster)
        with tempfile.TemporaryDirectory(prefix="setpoint-compile-") as folder:
            path = Path(folder) / "model.so"
            with _native_output() as said:
                try:
                    tl2cgen.export_lib(model, toolchain="gcc", libpath=path, nthread=1)
                except tl2cgen.TL2cgenError as exc:
                    raise DependencyMissingError(
                        f"compiling the model failed: {exc} {said()}".strip(),
                        details={"package": "gcc"},
                    ) from exc
            library = path.read_bytes()
        return cls(library, current_platform(), **cls.common_fields(original.metadata()))

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        built_on = metadata.get("platform")
        if not isinstance(built_on, Mapping):
            raise ArtifactCorruptedError(
                "the compiled model's metadata does not say which platform it was built "
                "for; run setpoint optimize again"
            )
        return cls(cls.file(files), built_on, **cls.common_fields(metadata))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "platform": dict(self.built_on)}

    def scores(self, matrix: FloatArray) -> FloatArray:
        if matrix.shape[0] <= _ROW_CALLS:
            out = self._rows(matrix)
        else:
            # (rows, targets, classes): one target; one "class" for binary and regression.
            found = self._predictor.predict(self._dmatrix(matrix, dtype="float64"))
            out = np.asarray(found, dtype=np.float64)[:, 0, :]
        return out[:, 0] if out.shape[1] == 1 else out

    def save(self) -> dict[str, bytes]:
        return {"model": self.library}


class _RowCalls:
    """The library's own per-row ``predict`` called directly, for a few rows: tl2cgen's
    Predictor builds a DMatrix and dispatches to a thread pool per call, which costs
    more than the trees for the one-row requests a service answers.

    The generated code takes an array of ``union Entry {int missing; double fvalue;}``
    (8 bytes each), a value marked missing by ``missing == -1``, and adds each tree's
    output to ``result``, so that starts at zero."""

    def __init__(self, path: str) -> None:
        self._library = ctypes.CDLL(path)
        self._library.predict.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self._library.predict.restype = None
        classes = np.zeros(self._library.get_num_target(), dtype=np.int32)
        self._library.get_num_class(classes.ctypes.data_as(ctypes.c_void_p))
        self._width = int(classes.max())

    def __call__(self, matrix: FloatArray) -> FloatArray:
        rows, features = matrix.shape
        entries = np.array(matrix, dtype=np.float64, order="C")  # a copy: marked below
        missing = np.isnan(entries)
        if missing.any():  # the union's int is the entry's first 4 bytes
            entries.view(np.int32).reshape(rows, features, 2)[..., 0][missing] = -1
        out = np.zeros((rows, self._width), dtype=np.float64)
        predict, data, result = self._library.predict, entries.ctypes.data, out.ctypes.data
        for k in range(rows):
            predict(data + k * features * 8, 0, result + k * self._width * 8)
        return out


def check_platform(built_on: Mapping[str, str]) -> None:
    """Refuse a library built for another machine, OS or C library, naming the fix."""
    here = current_platform()
    differ = [key for key in ("machine", "system", "libc") if built_on.get(key) != here[key]]
    if differ:
        theirs = ", ".join(f"{k} {built_on.get(k) or '?'}" for k in differ)
        ours = ", ".join(f"{k} {here[k]}" for k in differ)
        raise PlatformMismatchError(
            f"this compiled model was built for {theirs}, but this machine has {ours}; "
            "run `setpoint optimize NAME@VERSION --only compiled` on a machine like this "
            "one (or serve the original version)",
            details={"built_on": dict(built_on), "here": here},
        )


def _import_tl2cgen() -> Any:
    return optional_import("tl2cgen", package="tl2cgen", extra=_EXTRA)


def _library_file(library: bytes) -> str:
    """A file holding ``library``, named by its hash: the dynamic loader needs a path,
    and one file per content lets every load of the same model share it."""
    folder = Path(tempfile.gettempdir()) / f"setpoint-compiled-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    # A shared temporary folder: one another user made under this name could hold a
    # library of theirs with the hash of ours, which the loader would run.
    found = folder.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise StoreError(
            f"{folder} is not a folder only this user can write to; remove it (the compiled "
            "models' cache) and load the model again"
        )
    path = folder / f"{hashlib.sha256(library).hexdigest()}.so"
    if not path.exists():
        handle, staged = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(library)
        os.replace(staged, path)  # atomic: a concurrent loader sees all of it or nothing
    return str(path)


@contextlib.contextmanager
def _native_output() -> Iterator[Callable[[], str]]:
    """Keep the compiler's log lines (tl2cgen prints them) out of the command's output;
    the caller may quote them in an error."""
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        yield lambda: said.getvalue()[-2000:]
