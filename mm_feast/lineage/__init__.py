"""Per-embedding lineage in the registry's SQL database: records, queries, erasure, CLI.

Import the submodules directly (``mm_feast.lineage.query``, ``.recorder``, ``.db``); this
package stays import-light because the ingest pipeline imports the recorder.
"""

from mm_feast.stores.lineage import LineageDB, lineage_target, open_store
from mm_feast.core.records import EncoderInfo, ErasureRecord, LineageNode, LineageRecord, ParentRef

__all__ = [
    "EncoderInfo", "ErasureRecord", "LineageDB", "LineageNode", "LineageRecord", "ParentRef",
    "lineage_target", "open_store",
]
