"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.plugin.fusion``."""

from mm_feast.plugin.fusion import *  # noqa: F401,F403
