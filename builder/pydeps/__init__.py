"""The Python-dependency pipeline, one module a stage:

    index      a PEP 691/700 Simple API client (PyPI or a mirror)
    lockfile   the lock file's format: read and write, nothing else
    resolve    site -> lock (uv or pip-compile; date cutoff or yank policy)
    blobs      the content-addressed download cache (parallel, resumable)
    native     building sdists with C extensions for the target (docker | host | target)
    wheelhouse lock -> wheelhouse (select, fetch, build, prove complete)
"""
