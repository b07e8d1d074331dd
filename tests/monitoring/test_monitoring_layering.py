"""Monitoring sits below the workspace: no module under ``setpoint.monitoring``
imports ``setpoint.workspace``, not even for type checking or inside a function.
What the monitors need of a workspace is the narrow ``monitoring/_sources.py``
protocols, which ``Workspace`` satisfies structurally (read from the source with
``ast``, nothing is imported)."""

from __future__ import annotations

from pathlib import Path

import setpoint
from layering_support import imported_names

MONITORING = Path(setpoint.__file__).parent / "monitoring"
WORKSPACE = "setpoint.workspace"


def _package(path: Path, root: Path) -> str:
    """The dotted package a module file sits in (``setpoint.monitoring.report``)."""
    parts = path.relative_to(root.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1])


def _imports_workspace(path: Path, package: str) -> bool:
    return any(
        name == WORKSPACE or name.startswith(WORKSPACE + ".")
        for name in imported_names(path, package)
    )


def test_no_monitoring_module_imports_the_workspace() -> None:
    modules = sorted(MONITORING.rglob("*.py"))
    assert len(modules) > 20  # the right folder, with report/
    offenders = [
        str(p.relative_to(MONITORING))
        for p in modules
        if _imports_workspace(p, _package(p, MONITORING))
    ]
    assert offenders == [], (
        f"{offenders} import {WORKSPACE}; take the protocols in monitoring/_sources.py instead"
    )


def test_the_check_sees_every_form_of_the_import(tmp_path: Path) -> None:
    package = "setpoint.monitoring"
    forms = [
        "from setpoint.workspace import Workspace",
        "import setpoint.workspace",
        "import setpoint.workspace as ws",
        "from setpoint import workspace",
        "from .. import workspace",
        "from ..workspace import Workspace",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from setpoint.workspace import Workspace",
        "def f():\n    from setpoint.workspace import Workspace",
        "class C:\n    def f(self):\n        import setpoint.workspace",
    ]
    for i, form in enumerate(forms):
        module = tmp_path / f"m{i}.py"
        module.write_text(form + "\n", encoding="utf-8")
        assert _imports_workspace(module, package), form
    deeper = tmp_path / "deeper.py"
    deeper.write_text("from ...workspace import Workspace\n", encoding="utf-8")
    assert _imports_workspace(deeper, "setpoint.monitoring.report")
    clean = tmp_path / "clean.py"
    clean.write_text(
        "from setpoint.monitoring._sources import Sources\n"
        "from . import workspace_notes\n"
        "import setpoint.workspaces\n",
        encoding="utf-8",
    )
    assert not _imports_workspace(clean, package)
