"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.core.records``."""

from mm_feast.core.records import *  # noqa: F401,F403
