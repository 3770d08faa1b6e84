"""The ``gateway`` script: the whole command where the server is installed, the agency commands alone where not.

``pip install .`` installs the agency client and the pure edXML core without the server's dependencies
(README "Installing"); ``pip install '.[server]'`` adds them. One script serves both: it loads the whole
command (:mod:`gateway.cli`), and when that fails because a module the server needs is not installed, it
runs the agency commands of :mod:`gateway.client.cli` instead (send, inbox, fetch, ack, status send,
document, keys generate). The server's commands then answer that they need ``gateway[server]`` rather than
"No such command". Nothing here imports the server unless it is there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.markup import escape

__all__ = ["SERVER_COMMANDS", "client_only_app", "main", "print_version"]

#: the commands of :mod:`gateway.cli` that need the server installed (everything but the agency commands)
SERVER_COMMANDS = ("serve", "worker", "migrate", "backup", "restore", "openapi", "agency", "token", "operator",
                   "ledger", "report", "vxp", "upstream", "demo")

INSTALL_SERVER = "pip install 'gateway[server]'"


def print_version(value: bool) -> None:
    """The ``--version`` option of both commands: ``gateway <version>`` on standard output, exit 0."""
    if value:
        from gateway import __version__

        typer.echo(f"gateway {__version__}")
        raise typer.Exit()


def _server_stub(name: str, missing: str) -> Callable[..., None]:
    def stub(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
        typer.echo(f"error: `gateway {name}` is a server command, and this installation holds the agency "
                   f"client only (no module named {missing!r}). Install the server: {INSTALL_SERVER}", err=True)
        raise typer.Exit(code=1)

    stub.__doc__ = f"Needs the server ({escape(INSTALL_SERVER)})."
    return stub


def client_only_app(missing: str) -> typer.Typer:
    """The agency commands, and a clear refusal for each server command (``missing`` names why)."""
    from gateway.client.cli import register_client_commands

    app = typer.Typer(
        help=f"Document interoperability gateway: the agency commands. This installation has no server (no "
             f"module named {missing!r}); {', '.join(SERVER_COMMANDS)} need {escape(INSTALL_SERVER)}.",
        no_args_is_help=True, add_completion=False,
    )


    @app.callback()
    def _options(
        version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                              help="print the version and exit")] = False,
    ) -> None:
        """Document interoperability gateway: the agency commands."""

    register_client_commands(app)
    # Checking a proof bundle needs no server either (gateway.ledger.bundle: cryptography and the standard library).
    from gateway.ledger.bundle_cli import verify_proof

    app.command("verify-proof")(verify_proof)
    settings = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    for name in SERVER_COMMANDS:
        app.command(name, hidden=True, context_settings=settings, add_help_option=False)(_server_stub(name, missing))
    return app


def main() -> None:
    try:
        from gateway.cli import main as whole
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or missing == "gateway" or missing.startswith("gateway."):
            raise  # a module of ours missing is a broken installation, not a client-only one
        app = client_only_app(missing)
        try:
            app()
        except KeyboardInterrupt:
            sys.exit(130)
    else:
        whole()
