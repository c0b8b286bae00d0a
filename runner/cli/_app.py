"""The typer application and the decorator every subcommand is registered with."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable

import typer

from runner.errors import BatchError, UserError

app = typer.Typer(
    name="runner",
    help="Train, export and run bioimage.io models for instance segmentation of microscopy images.\n\n"
    "Example: runner predict model.zip --input images/ --output out/",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

STATE = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
    max_memory: str = typer.Option(
        None,
        "--max-memory",
        help="Memory budget, e.g. 16G: images, volumes and model inputs whose size (from file headers and "
        "package descriptions) exceeds it are refused before anything is allocated "
        "(default: RUNNER_MAX_MEMORY, else 80% of physical memory).",
    ),
) -> None:
    if version:
        from runner import __version__

        typer.echo(f"bmz-runner {__version__}")
        raise typer.Exit(0)
    STATE["debug"] = debug
    from runner.safety import set_max_memory

    try:
        set_max_memory(max_memory)
    except UserError as exc:
        raise fail(str(exc)) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def command(name: str, **kwargs) -> Callable:
    """Register a subcommand whose :class:`UserError` becomes one line on stderr and exit code 2."""

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args, **kw):
            from runner.safety.signals import Terminated, exit_code, install_sigterm

            install_sigterm()
            try:
                return func(*args, **kw)
            except (UserError, BatchError) as exc:
                if STATE["debug"]:
                    traceback.print_exc()
                raise fail(str(exc), exc.exit_code) from None
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): cleanups ran while unwinding
                typer.echo("terminated" if isinstance(exc, Terminated) else "interrupted", err=True)
                raise typer.Exit(exit_code(exc)) from None
            except Exception as exc:  # pydantic validation from user-given values is a user error too
                from pydantic import ValidationError

                if isinstance(exc, ValidationError) and not STATE["debug"]:
                    raise fail(_format_validation(exc)) from None
                raise

        return app.command(name, **kwargs)(wrapper)

    return decorate


def _format_validation(exc) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else err.get("msg", ""))
    return f"invalid {exc.title}: " + "; ".join(parts)


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
