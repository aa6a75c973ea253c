"""The Python-dependency pipeline, one module a stage:

    index      a PEP 691/700 Simple API client (PyPI or a mirror)
    lockfile   the lock file's format: read and write, nothing else
    release    the site's Airflow release on the index: checked early, its cutoff, what to resolve
    method     how to resolve: official constraints, else a date cutoff
    backends   the resolvers: uv pip compile | pip-compile (isolated from host config)
    resolve    site -> lock, reused while the inputs recorded in it are unchanged
    uv         uv's command lines, built in one place (builder.run runs them)
    blobs      the content-addressed download cache (parallel, resumable)
    native     building sdists with C extensions for the target (docker | host | target)
    cythonized Cython's step of a compile-on-target sdist, run here
    wheelhouse lock -> wheelhouse (select, fetch, build, place; proven by builder.check.wheelhouse)
    manifest   the wheelhouse's manifest.json: written, and read back by builder.pipeline
    advisories the locked pins against an imported OSV advisory feed (bundle audit), offline
"""
