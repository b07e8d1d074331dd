"""The dashboard's pages, one module per subject; each lists its ``PAGES`` and
``ACTIONS`` (see ``_page.py``)."""

from __future__ import annotations

from types import ModuleType

from setpoint.ui.pages import alerts, audit, endpoint, overview, rollouts
from setpoint.ui.pages._page import Action, Page

_MODULES: tuple[ModuleType, ...] = (overview, endpoint, rollouts, alerts, audit)


def pages() -> list[Page]:
    return [page for module in _MODULES for page in getattr(module, "PAGES", ())]


def actions() -> list[Action]:
    return [action for module in _MODULES for action in getattr(module, "ACTIONS", ())]
