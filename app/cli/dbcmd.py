"""`belegsync db …` and `belegsync secret-key`."""

from __future__ import annotations

import click

from app.cli.app import App
from shared.errors import BelegsyncError

pass_app = click.make_pass_decorator(App)


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@pass_app
def upgrade(app: App, revision: str) -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from shared import migrations
    from shared.db import DatabaseError, connect_error

    try:
        migrations.upgrade(app.settings.database_url, revision)
    except OperationalError as e:
        problem = connect_error(e)
        if not isinstance(problem, DatabaseError):
            raise problem from e  # a refused login: configuration, exit 2
        raise BelegsyncError(f"migration failed: {str(getattr(e, 'orig', e)).strip()}") from e
    except SQLAlchemyError as e:
        raise BelegsyncError(f"migration failed: {str(getattr(e, 'orig', e)).strip()}") from e
    click.echo(
        f"database at revision {migrations.head_revision() if revision == 'head' else revision}"
    )


@db_group.command("downgrade")
@click.argument("revision", default="base")
@pass_app
def downgrade(app: App, revision: str) -> None:
    """Undo migrations down to REVISION (default: an empty database)."""
    from shared import migrations

    migrations.downgrade(app.settings.database_url, revision)
    click.echo(f"database at revision {revision}")


@db_group.command("check")
@pass_app
def check(app: App) -> None:
    """Exit 0 when the schema is current, else say what to run."""
    from shared import migrations

    app.db.check_migrated()
    click.echo(f"database is at the newest revision {migrations.head_revision()}")


@click.command("secret-key")
def secret_key() -> None:
    """Print a new Fernet key for BELEGSYNC_SECRET_KEY."""
    from shared.crypto import generate_key

    click.echo(generate_key())
