"""The serving modules import downwards: only ``server.py``, which starts the app,
imports ``setpoint.serving.app``; the protocol modules and their shared helpers sit
below it (read from the source with ``ast``, nothing is imported)."""

from __future__ import annotations

from pathlib import Path

import setpoint
from layering_support import imported_names

SERVING = Path(setpoint.__file__).parent / "serving"
APP = "setpoint.serving.app"
STARTS_THE_APP = {"server.py"}


def _imports_app(path: Path) -> bool:
    return APP in imported_names(path, "setpoint.serving")


def test_no_serving_module_but_the_server_imports_the_app() -> None:
    modules = sorted(SERVING.glob("*.py"))
    assert len(modules) > 10  # the right folder
    offenders = [
        p.name
        for p in modules
        if p.name not in STARTS_THE_APP and p.name != "app.py" and _imports_app(p)
    ]
    assert offenders == [], f"{offenders} import {APP}; import the module below it instead"


def test_the_check_sees_every_form_of_the_import(tmp_path: Path) -> None:
    forms = [
        "from setpoint.serving.app import create_app",
        "import setpoint.serving.app",
        "from setpoint.serving import app",
        "from . import app",
        "from .app import create_app",
        "def f():\n    from setpoint.serving.app import create_app",
    ]
    for i, form in enumerate(forms):
        module = tmp_path / f"m{i}.py"
        module.write_text(form + "\n", encoding="utf-8")
        assert _imports_app(module), form
    clean = tmp_path / "clean.py"
    clean.write_text("from setpoint.serving.state import ServingState\n", encoding="utf-8")
    assert not _imports_app(clean)
