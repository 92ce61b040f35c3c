"""`python -m devstack run` starts the local stack; `python -m devstack token` prints a JWT."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack.rundir import default_run_dir, read_secret
from devstack.runner import run
from devstack.tokens import mint_token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="data and secrets folder (default: <repo>/.run)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_command = commands.add_parser(
        "run", help="start Redis, PostgreSQL and the four services in the foreground"
    )
    run_command.add_argument(
        "--log-dir", type=Path, default=None, help="write service logs here instead of stdout"
    )
    token = commands.add_parser("token", help="print a JWT signed with the stack's secret")
    token.add_argument("--sub", required=True, help="user id (the `sub` claim)")
    token.add_argument("--role", default="USER", choices=["USER", "ADMIN"])
    token.add_argument("--ttl-s", type=int, default=3600, help="lifetime in seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; the process exit code."""
    arguments = _parser().parse_args(argv)
    run_dir: Path = arguments.run_dir or default_run_dir()
    if arguments.command == "run":
        return run(run_dir, os.environ, log_dir=arguments.log_dir)
    secret = os.environ.get("JWT_SECRET") or read_secret(run_dir / "jwt-secret")
    if secret is None:
        print(
            f"no JWT secret: set JWT_SECRET, or start the stack once (make run) to create "
            f"{run_dir / 'jwt-secret'}",
            file=sys.stderr,
        )
        return 2
    print(mint_token(secret, arguments.sub, arguments.role, arguments.ttl_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
