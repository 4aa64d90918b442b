"""Every use of a private Feast API lives here, so a Feast upgrade has one place to check.

Feast 0.67 keeps private: its arrow → online-row conversion (the compute engine needs exactly that
conversion), its Milvus layout helpers (our store keeps the stock layout), the entity sort of
``retrieve_online_documents_v2`` (defect 1), and a FeatureStore's provider.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
from feast import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.infra.online_stores.milvus_online_store.milvus import (  # noqa: F401  (re-exported below)
    _get_composite_key_name,
    _mark_partition_key,
    _milvus_escape_string,
    _milvus_token,
    _partition_key_name,
    _table_id,
)
from feast.utils import _convert_arrow_to_proto, _get_unique_entities_from_values
from feast.value_type import ValueType

# Feast's Milvus helpers, under public names: the store's layout must stay the stock one (same
# collection names, primary-key name, partition key and escaping), so these are reused, not copied.
composite_key_name = _get_composite_key_name
mark_partition_key = _mark_partition_key
milvus_escape_string = _milvus_escape_string
milvus_token = _milvus_token
partition_key_name = _partition_key_name
table_id = _table_id
# the sort FeatureStore applies to document rows (defect 1): the store must follow it exactly
unique_entities_from_values = _get_unique_entities_from_values


def online_store_of(store: Any) -> Any:
    """The online store object behind a FeatureStore (Feast keeps its provider private)."""
    return store._get_provider().online_store

OnlineRow = Tuple[EntityKeyProto, Dict[str, ValueProto], datetime, Optional[datetime]]


def join_key_types(view: FeatureView) -> Dict[str, ValueType]:
    return {f.name: f.dtype.to_value_type() for f in view.entity_columns}


def online_rows(table: pa.Table, view: FeatureView) -> List[OnlineRow]:
    """Feast's own conversion of offline rows into what ``online_write_batch`` takes."""
    if table.num_rows == 0:
        return []
    return _convert_arrow_to_proto(table, view, join_key_types(view))


def entity_key_hex(join_key: str, value: str, serialization_version: int) -> str:
    """The hex primary key Feast's Milvus layout gives a single string join key."""
    key = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=value)])
    return serialize_entity_key(key, entity_key_serialization_version=serialization_version).hex()
