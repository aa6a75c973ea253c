"""Shared test helpers: the harness, not tests. Nothing here is collected by pytest.

Import as `from support.<module> import ...` (pytest puts tests/ on sys.path, through the
rootdir conftest; the e2e package imports these the same way):

- `rpm`: the RPM tests' synthetic wheelhouse, throwaway GnuPG key, `build`, the target root.
- `pkgindex`: a local PEP 691/700 package index on loopback.
- `readers`: how each program that reads a rendered file sees it.
- `dockerengine`: a private Docker engine and the stand-in builder image.
"""
