"""mm-feast's ``FeatureStore``: Feast's own, with document search reading its view through the
registry cache, as ``get_online_features`` does.

Feast 0.67's ``retrieve_online_documents_v2`` calls ``get_feature_view`` once per requested
feature with ``allow_registry_cache=False``. Every search therefore reads the registry database
and deserialises the view again, type checks included: two of each for two features, 6 of its
8 ms on the demo repo. Inside that method, this store answers those lookups from the views it
fetched in the last ``registry.cache_ttl_seconds``: the staleness Feast's registry cache
allows every other serving read. Everything else is Feast's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from feast import FeatureStore

_SERVING = threading.local()


class MmFeatureStore(FeatureStore):
    """``FeatureStore`` whose document search reads views through a cache (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._served_views: dict[str, tuple[float, Any]] = {}
        self._served_views_lock = threading.Lock()

    def retrieve_online_documents_v2(self, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_SERVING, "depth", 0)
        _SERVING.depth = depth + 1
        try:
            return super().retrieve_online_documents_v2(*args, **kwargs)
        finally:
            _SERVING.depth = depth

    def get_feature_view(self, name: str, allow_registry_cache: bool = False) -> Any:
        if getattr(_SERVING, "depth", 0) == 0:
            return super().get_feature_view(name, allow_registry_cache=allow_registry_cache)
        ttl = float(self.config.registry.cache_ttl_seconds or 0)
        now = time.monotonic()
        with self._served_views_lock:
            found = self._served_views.get(name)
        if found is not None and (ttl <= 0 or now - found[0] < ttl):
            return found[1]
        view = super().get_feature_view(name, allow_registry_cache=True)
        with self._served_views_lock:
            self._served_views[name] = (now, view)
        return view
