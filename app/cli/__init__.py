"""The `belegsync` console command.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input — with a one-line reason on
stderr and nothing changed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from pydantic import ValidationError

from app.cli.accounts import accounts
from app.cli.app import App
from app.cli.dbcmd import db_group, secret_key
from app.cli.output import error
from shared.errors import BelegsyncError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="belegsync")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """belegsync: GetMyInvoices ⇄ Billomat document sync over RabbitMQ.

    Configured by BELEGSYNC_* environment variables (see README).
    """
    if ctx.obj is None:
        ctx.obj = App()


cli.add_command(db_group)
cli.add_command(secret_key)
cli.add_command(accounts)


def _register_optional_commands() -> None:
    """Commands whose modules pull in the broker, the pipeline or the simulators."""
    from app.cli.ops import register

    register(cli)


def _settings_problem(e: ValidationError) -> str:
    first = e.errors()[0]
    field = "BELEGSYNC_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
    return f"{field}: {first['msg']}"


def main(argv: Sequence[str] | None = None, app: App | None = None) -> int:
    """Run the CLI and return its exit code (``sys.exit`` is left to the console script)."""
    _register_optional_commands()
    args = list(sys.argv[1:] if argv is None else argv)
    owned = app is None
    app = app or App()
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
    except ValidationError as e:
        error(_settings_problem(e))
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
