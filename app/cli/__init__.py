"""The `belegsync` console command.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input — with a one-line reason on
stderr and nothing changed.

Start-up is part of the interface: `belegsync --help` and every `--help` import click and the one
module of the command asked for, nothing else.  Each command module keeps its heavy imports
(SQLAlchemy, kombu, alembic, the simulators) inside the functions that run, so `consume` loads
the consumer and not the producer, the demo or the migrations.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from app.cli.output import error
from shared.errors import BelegsyncError, UsageError

if TYPE_CHECKING:
    from app.cli.app import App

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# name -> (module, attribute, one-line help shown by `belegsync --help` without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "accounts": ("app.cli.accounts", "accounts", "Manage sync accounts."),
    "consume": ("app.cli.run", "consume", "Run a consumer: upload documents to the other side."),
    "db": ("app.cli.dbcmd", "db_group", "Database schema (Alembic migrations)."),
    "demo": ("app.cli.demo", "demo", "The whole sync loop on the local simulators."),
    "doctor": ("app.cli.doctor", "doctor", "Check an account against the real APIs."),
    "documents": ("app.cli.overview", "documents", "The per-document ledger."),
    "produce": ("app.cli.run", "produce", "Run the pollers: detect and publish new documents."),
    "reconcile": ("app.cli.reconcile", "reconcile", "Compare source, target and ledger."),
    "replay": ("app.cli.replay", "replay", "Move parked documents back to work."),
    "secret-key": ("app.cli.dbcmd", "secret_key", "Print a new Fernet key."),
    "simulate": ("simulators.cli", "simulate", "Run the local GMI and Billomat simulators."),
    "status": ("app.cli.overview", "status", "The sync overview per account."),
    "users": ("app.cli.users", "users", "Users of the web console."),
    "web": ("app.cli.web", "web", "Serve the web console."),
    "webhooks": ("app.cli.webhooks", "webhooks", "Receive Billomat webhooks."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when they are run or asked for help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="belegsync")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """belegsync: GetMyInvoices ⇄ Billomat document sync over RabbitMQ.

    Configured by BELEGSYNC_* environment variables (see README).
    """
    if ctx.obj is None:
        from app.cli.app import App

        ctx.obj = App()


def main(argv: Sequence[str] | None = None, app: App | None = None) -> int:
    """Run the CLI and return its exit code (``sys.exit`` is left to the console script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    owned = app is None
    if app is None:
        from app.cli.app import App

        app = App()
    try:
        # Without standalone mode click returns (not raises) the code of an Exit(n).
        code = cli.main(args=args, prog_name="belegsync", standalone_mode=False, obj=app)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:  # Ctrl-C at a prompt or during a command
        error("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        # Click's own usage errors, squeezed to one line.
        error(e.format_message())
        return EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except UsageError as e:
        error(str(e))
        return EXIT_USAGE
    except BelegsyncError as e:
        error(str(e))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if owned:
            app.close()
    return code if isinstance(code, int) else EXIT_OK
