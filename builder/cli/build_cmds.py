"""`bundle build` and `bundle export`."""

from __future__ import annotations

from pathlib import Path

import click

from builder import report
from builder.cli.options import load, site_option
from builder.cli.terminal import terminal_report

_path = click.Path(path_type=Path)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command()
@site_option
@click.option("--out", "out_dir", type=_path, help="Output directory (default: build/<site name>).")
@click.option("--locks-dir", type=_path, default=Path("locks"), show_default=True,
              help="Where `bundle lock` keeps lock files.")
@click.option("--wheelhouse", "wheelhouse_dir", type=_path,
              help="Use this ready wheelhouse directory (needs --lock); skips downloading.")
@click.option("--lock", "lock_file", type=_path, help="The offline hash lock of --wheelhouse.")
@click.option("--uv-wheel", type=_path, help="uv wheel for the target (default: uv-*.whl in the wheelhouse).")
@click.option("--sign/--no-sign", default=None,
              help="Sign RPMs and repomd.xml (default: the site's [publish] sign, true).")
@click.option("--rpm-cache", type=_path, help="Cache of wheelhouse RPMs shared by sites (default: ~/.cache/airflow-prod/rpms).")
@click.option("--force", is_flag=True, help="Redo every step, ignoring recorded input hashes.")
@click.option("--secrets", "secrets_file", type=_path,
              help="The site's secrets file: its fingerprints (never the values) let every node check "
              "it holds the same secrets (default: ~/.config/airflow-prod/<site>.secrets.env if present).")
def build(site_path: str, out_dir: Path | None, locks_dir: Path, wheelhouse_dir: Path | None,
          lock_file: Path | None, uv_wheel: Path | None, sign: bool | None, rpm_cache: Path | None,
          force: bool, secrets_file: Path | None) -> None:
    """Everything, ending in a signed yum repository: lock, wheelhouse, render, package, publish, audit, sbom.

    Each step is skipped when its inputs did not change since the last build
    into the same --out (a config-only change rebuilds the small site packages
    and reuses the wheelhouse RPM). Build times in the RPMs come from
    SOURCE_DATE_EPOCH, else the site file's last git commit, else its mtime:
    two builds from the same inputs give byte-identical unsigned RPMs.
    The audit step checks the lock against the imported advisory feed (`bundle
    advisories import`) and writes repo/advisories.json and .txt, which the export
    carries; without a feed they say none was imported.
    """
    from builder.pipeline import BuildOptions, build as run_build
    from builder.errors import UsageError

    if wheelhouse_dir and not lock_file:
        raise UsageError("--wheelhouse needs --lock (the offline hash lock of those wheels)")
    site = load(site_path)
    options = BuildOptions(
        out_dir=out_dir, locks_dir=locks_dir, wheelhouse_dir=wheelhouse_dir, lock_file=lock_file,
        uv_wheel=uv_wheel, sign=sign, rpm_cache=rpm_cache, force=force, secrets_file=secrets_file,
    )
    # The build's progress goes to stdout, where `bundle build` has always printed it.
    notify = terminal_report(info_to_stdout=True)
    report.install(notify)
    summary = run_build(site, site_path, options, notify=notify)
    click.echo("")
    click.echo(f"site {summary.site}: {len(summary.packages)} packages in {summary.seconds:.1f}s")
    for pkg in summary.packages:
        mark = "reused" if pkg.reused else "built "
        click.echo(f"  {mark} {_size(pkg.size):>10}  {pkg.path.name}")
    reused = [s.name for s in summary.steps if s.reused]
    click.echo(f"steps skipped (inputs unchanged or given): {', '.join(reused) or 'none'}")
    if summary.repo:
        signed = f"signed by {summary.signed_by}" if summary.signed_by else "UNSIGNED"
        click.echo(f"repository ({signed}): {summary.repo}")
    click.echo(f"next: bundle export --site {site_path}" + (f" --out {out_dir}" if out_dir else ""))


@click.command("export")
@site_option
@click.option("--out", "out_dir", type=_path, help="The build's output directory (default: build/<site name>).")
@click.option("--to", "dest", type=_path, help="Tarball path (default: <out>/export/airflow-prod-<site>-<V>-<R>.tar).")
@click.option("--allow-unsigned", is_flag=True,
              help="Export a repository built without signing (its .repo files say gpgcheck=0): for tests only.")
def export_cmd(site_path: str, out_dir: Path | None, dest: Path | None, allow_unsigned: bool) -> None:
    """One tarball of the signed repository, SHA256SUMS inside, to carry across the air gap.

    On the other side: `sha256sum -c <tar>.sha256`, unpack, `sha256sum -c SHA256SUMS`
    inside, then import into Satellite or serve it to dnf (docs/satellite.md).
    """
    from builder.pipeline import export

    site = load(site_path)
    tar, digest = export(site, out_dir, dest, allow_unsigned=allow_unsigned)
    click.echo(f"wrote {tar} ({_size(tar.stat().st_size)})")
    click.echo(f"sha256 {digest} (also in {tar.name}.sha256)")


COMMANDS = [build, export_cmd]
