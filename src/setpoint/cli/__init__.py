"""The ``setpoint`` command line: a thin layer over :class:`setpoint.Workspace`."""

from setpoint.cli.main import app, main

__all__ = ["app", "main"]
