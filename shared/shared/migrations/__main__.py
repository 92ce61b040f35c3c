"""`python -m shared.migrations`: upgrade the database at DATABASE_URL to the newest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import DatabaseSettings, from_env


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for this package, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def main() -> None:
    """Upgrade to head."""
    command.upgrade(alembic_config(from_env(DatabaseSettings).url), "head")


if __name__ == "__main__":
    main()
