"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.stores.lineage``."""

from mm_feast.stores.lineage import *  # noqa: F401,F403
