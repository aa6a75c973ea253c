"""Checks of the build's output against the real readers: Airflow's own schema and
parser, systemd-analyze, and the wheelhouse proof (a real offline install). The pipeline
and `bundle render` call them; render/ never does.
"""
