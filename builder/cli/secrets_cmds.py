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
