"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.cli.demo``."""

from mm_feast.cli.demo import *  # noqa: F401,F403
