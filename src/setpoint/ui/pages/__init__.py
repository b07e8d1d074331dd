"""The dashboard's pages, one module per subject; each lists its ``PAGES``,
``ACTIONS`` and ``DOWNLOADS`` (see ``_page.py``)."""

from __future__ import annotations

from types import ModuleType

from setpoint.ui.pages import (
    alerts,
    audit,
    compare,
    datasets,
    endpoint,
    models,
    overview,
    rollouts,
)
from setpoint.ui.pages._page import Action, Download, Page

_MODULES: tuple[ModuleType, ...] = (
    overview,
    endpoint,
    models,
    compare,
    datasets,
    rollouts,
    alerts,
    audit,
)


def pages() -> list[Page]:
    return [page for module in _MODULES for page in getattr(module, "PAGES", ())]


def actions() -> list[Action]:
    return [action for module in _MODULES for action in getattr(module, "ACTIONS", ())]


def downloads() -> list[Download]:
    return [download for module in _MODULES for download in getattr(module, "DOWNLOADS", ())]
