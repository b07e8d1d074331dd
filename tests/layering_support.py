"""What a module imports, read from its source with ``ast`` (nothing is imported):
every ``import`` and ``from ... import`` anywhere in it, under TYPE_CHECKING and inside
functions included, as dotted names with relative imports resolved."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_names(path: Path, package: str) -> set[str]:
    """Each module ``path`` imports, and each ``module.name`` it takes from one;
    ``package`` is the dotted package the file sits in (for relative imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # relative: one level is the module's own package, each more one up
                parts = package.split(".")
                base = ".".join(
                    [*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])]
                )
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names
