"""The `bundle` command line. The only place that parses arguments and exits.

Each command group lives in its own module and only calls the engine.
"""

from __future__ import annotations

import logging
import sys

import click

from builder import report
from builder.cli.terminal import TerminalReport
from builder.errors import BundleError

HELP = """Build offline Apache Airflow bundles for air-gapped RHEL 9 hosts.

One site.toml describes the deployment; `bundle` validates it, renders every
config file and systemd unit, locks and downloads the wheels, and packages it
all as signed airflow-prod RPMs in a yum repository Satellite can mirror.

\b
Typical session:
  bundle check   --site site.toml          validate only
  bundle render  --site site.toml --out build/rendered
  bundle secrets init --site site.toml     fernet key, secret_key, jwt_secret
  bundle tls csr --site site.toml --out build/tls
  bundle build   --site site.toml          everything, ending in a yum repo
  bundle audit   --site site.toml          the lock against an imported advisory feed
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Show every external command run and all of its output.")
@click.version_option(package_name="airflow-prod-bundle", prog_name="bundle")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    # The engine reports through builder.report alone; logging is only for the libraries
    # it uses (docker, urllib3), whose warnings still reach stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = TerminalReport(verbose)
    report.install(ctx.obj)


def _register() -> None:
    # Every group is imported unconditionally: a group that fails to import must
    # fail the command loudly, never make its commands vanish from `bundle --help`.
    from builder.cli import audit_cmds, build_cmds, lock_cmds, secrets_cmds, site_cmds

    for module in (site_cmds, secrets_cmds, lock_cmds, build_cmds, audit_cmds):
        for command in module.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        try:
            cli.main(args=argv, prog_name="bundle", standalone_mode=False)
        finally:  # a tool's status line must not run into the error or the shell prompt
            shown = report.current()
            if isinstance(shown, TerminalReport):
                shown.close()
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BundleError as exc:
        click.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
