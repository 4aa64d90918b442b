"""Every use of a private Feast API lives here, so a Feast upgrade has one place to check.

Feast 0.67 keeps its arrow → online-row conversion private (``feast.utils._convert_arrow_to_proto``);
the compute engine needs exactly that conversion to hand rows to an online store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Dict, List, Optional, Tuple

import pyarrow as pa
from feast import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.utils import _convert_arrow_to_proto
from feast.value_type import ValueType

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
