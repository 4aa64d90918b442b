"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.cli.report``."""

from mm_feast.cli.report import *  # noqa: F401,F403
