"""airflow-prod bundle builder: the engine. The CLI lives in builder.cli."""

__version__ = "0.1.0"
