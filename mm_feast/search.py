"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.services.search``."""

from mm_feast.services.search import *  # noqa: F401,F403
