"""`bundle secrets init` and `bundle tls csr|self-signed|check`."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.options import load, site_option


@click.group()
def secrets() -> None:
    """The site's shared secrets (never in an RPM, never in git)."""


@secrets.command("init")
@site_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write (default: ~/.config/airflow-prod/<site>.secrets.env).")
@click.option("--force", is_flag=True, help="Replace an existing secrets file.")
def secrets_init(site_path: str, out_path: Path | None, force: bool) -> None:
    """Generate fernet key, [api] secret_key and jwt_secret; placeholders for passwords.

    The file is created 0600. Fill in the database and LDAP bind passwords,
    then install it on every node as <config>/secrets.env (root:root 0600):
    every node must share the same values.
    """
    from builder.material.secrets import default_secrets_path, write_secrets
    from builder.layout import secrets_path
    from builder.site.secrets import PLACEHOLDER

    site = load(site_path)
    out = write_secrets(site, out_path or default_secrets_path(site), force=force)
    click.echo(f"wrote {out} (mode 0600)")
    click.echo(f"next: replace {PLACEHOLDER} values, then install it on every node:")
    click.echo(f"  install -o root -g root -m 0600 {out.name} {secrets_path(site)}")


# What each rotation interrupts, and how little Airflow allows (docs/operations.md, Rotation).
_ROTATION_NOTES = {
    "secret-key": "[api] secret_key signs the log servers' fetch tokens: while hosts restart at different "
                  "times, a running task's log may fail to load from another host; nothing else is interrupted.",
    "jwt-secret": "jwt_secret signs every UI, API and task token, and Airflow checks one secret only: after the "
                  "restart users log in again, and a task running through it fails its next call to the "
                  "execution API. Least disruption: stop the workers first (systemctl stop "
                  "'airflow-celery-worker*': running tasks finish, up to celery.stop_timeout), then the steps, "
                  "then start them.",
}


@secrets.command("rotate")
@site_option
@click.argument("name", type=click.Choice(["fernet-key", "secret-key", "jwt-secret"]))
@click.option("--secrets", "secrets_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The site's secrets file (default: ~/.config/airflow-prod/<site>.secrets.env).")
@click.option("--finish", is_flag=True, help="fernet-key: drop the old key once `airflow rotate-fernet-key` ran.")
def secrets_rotate(site_path: str, name: str, secrets_path: Path | None, finish: bool) -> None:
    """A new value for one generated secret; the old file is kept beside it.

    \b
    fernet-key   two steps: "new,old" (decrypt with either), `airflow
                 rotate-fernet-key` once, then --finish ("new" alone)
    secret-key   [api] secret_key: the log servers' fetch tokens
    jwt-secret   UI, API and task tokens: users log in again

    Then every node gets the new file, and the hosts restart (the steps are printed).
    """
    from builder.layout import secrets_path as installed_path
    from builder.material.rotation import rotate
    from builder.material.secrets import default_secrets_path
    from builder.rpm.plan import config_package_name

    site = load(site_path)
    done = rotate(secrets_path or default_secrets_path(site), name, finish)
    click.echo(f"rotated {done.var} in {done.secrets} ({done.stage}); the old file is {done.kept}")
    dest = installed_path(site)
    click.echo("next, on every node at the same time (a node whose file differs refuses to start):")
    click.echo(f"  1. if `bundle build` reads this file (its fingerprints go into {config_package_name(site)}): "
               "bundle build and publish; in step 2 `dnf upgrade` the hosts instead of restarting them")
    click.echo(f"  2. install -o root -g root -m 0600 {done.secrets} {dest} on every node, "
               "then systemctl restart airflow.target")
    if done.stage == "started":
        click.echo("  3. on one host, once every host runs with both keys: airflow rotate-fernet-key "
                   "(re-encrypts every connection, variable and trigger with the new key)")
        click.echo(f"  4. once `airflow-prod doctor` there reports fernet ok (every stored value under the new "
                   f"key): bundle secrets rotate fernet-key --finish --site {site_path}, then 1-2 again")
    elif name in _ROTATION_NOTES:
        click.echo(f"note: {_ROTATION_NOTES[name]}")


@click.group()
def tls() -> None:
    """TLS key, CSR or self-signed certificate for the api-server, and checks."""


_tls_out = click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                        help="Directory for the key and the CSR/certificate.")
_force = click.option("--force", is_flag=True, help="Replace an existing private key.")


@tls.command("csr")
@site_option
@_tls_out
@_force
def tls_csr(site_path: str, out_dir: Path, force: bool) -> None:
    """Case A: a new private key and a CSR (SANs, serverAuth + clientAuth) for your CA."""
    from builder.material.tls import write_csr

    site = load(site_path)
    files = write_csr(site, out_dir, force=force)
    click.echo(f"wrote {files.key} (0600) and {files.csr}")
    click.echo("send the CSR to your CA; put the signed certificate followed by the CA chain in "
               f"{Path(str(site.tls.cert)).name}, and the CA chain alone in {Path(str(site.tls.ca)).name}; "
               "then run `bundle tls check`")


@tls.command("self-signed")
@site_option
@_tls_out
@_force
def tls_self_signed(site_path: str, out_dir: Path, force: bool) -> None:
    """Case B: a new private key and a self-signed certificate (tls.days valid)."""
    from builder.material.tls import write_self_signed

    site = load(site_path)
    files = write_self_signed(site, out_dir, force=force)
    click.echo(f"wrote {files.key} (0600) and {files.cert} (valid {site.tls.days} days)")


@tls.command("check")
@site_option
@click.option("--dir", "base", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A local directory holding the files under their site names (default: the site's paths).")
@click.option("--cert", type=click.Path(dir_okay=False, path_type=Path), help="Full-chain certificate file.")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="Private key file.")
@click.option("--ca", type=click.Path(dir_okay=False, path_type=Path), help="CA bundle the chain ends in.")
def tls_check(site_path: str, base: Path | None, cert: Path | None, key: Path | None, ca: Path | None) -> None:
    """Check key matches cert, SANs cover the base_url host, chain complete, expiry.

    Exit code 1 when any check fails.
    """
    from builder.material.tls import TlsCheckFailed, check_tls, default_paths

    site = load(site_path)
    d_cert, d_key, d_ca = default_paths(site, base)
    report = check_tls(site, cert or d_cert, key or d_key, ca or d_ca)
    click.echo(f"subject: {report.subject}")
    click.echo(f"subjectAltNames: {', '.join(report.sans) or '(none)'}")
    click.echo(f"certificates in chain file: {report.chain_length}; days to expiry: {report.days_left}")
    if not report.ok:
        raise TlsCheckFailed("TLS check failed:\n" + "\n".join(f"  - {p}" for p in report.problems))
    click.echo(f"ok: key matches, SANs cover {site.api.host}, chain complete")


COMMANDS = [secrets, tls]
