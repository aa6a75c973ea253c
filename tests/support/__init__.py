"""Shared test helpers: the harness, not tests. Nothing here is collected by pytest.

Import as `from support.<module> import ...` (pytest puts tests/ on sys.path, through the
rootdir conftest; the e2e package imports these the same way):

- `sites`: the example site, the smallest sites, writing site.toml (`to_toml`).
- `cli`: the `bundle` command run as a user runs it.
- `rpm`: the RPM tests' synthetic wheelhouse, throwaway GnuPG key, `build`, the target root.
- `booted`: dnf, unit states and DAG waits on a booted target host (the e2e suites).
- `tls`: a certificate's PEM.
- `pkgindex`: a local PEP 691/700 package index on loopback.
- `readers`: how each program that reads a rendered file sees it.
- `dockerengine`: a private Docker engine and the stand-in builder image.
"""
