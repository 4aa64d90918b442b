"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.plugin.milvus.store``."""

from mm_feast.plugin.milvus.store import *  # noqa: F401,F403
