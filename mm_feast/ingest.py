"""Old import path, kept for stored registries, feature_store.yaml files and user code: see ``mm_feast.pipeline.ingest``."""

from mm_feast.pipeline.ingest import *  # noqa: F401,F403
