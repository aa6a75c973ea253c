"""End-to-end test support: real servers, the booted target host, and the e2e flow.

Nothing here is project code: it is the test harness. `proc` is the one module
that runs external tools for the harness.
"""
