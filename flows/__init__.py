"""Prefect flows and the ``simreal`` CLI.

Prefect reads its settings when it is first imported, and the ephemeral API server inherits them; so the
project's defaults (a project-local PREFECT_HOME, no analytics, quiet logs) are applied here, before any
module of this package can import prefect."""

from flows.env import prefect_defaults

prefect_defaults()
