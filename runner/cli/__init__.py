"""The ``runner`` command line: one typer app, one module per subcommand (discovered on import)."""

from __future__ import annotations

import importlib
import pkgutil

from runner.cli._app import STATE, app, command, fail

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="runner")


__all__ = ["STATE", "app", "command", "fail", "main"]
