"""Milvus filter expressions built from typed conditions, so that user input is only ever a literal.

A condition names a stored scalar column, an operator from a fixed list and a value of the
column's type. The field name is checked against the collection's columns, the operator against
``OPERATORS`` and the value against the column's Milvus type; a string becomes a JSON-quoted
literal. So ``'x" or 1 == 1 or "'`` matches the text it spells, never every row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final, Mapping, Sequence

from pymilvus import DataType

from mm_feast.core.errors import InvalidArgument

OPERATORS: Final = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
_ORDERED = ("<", "<=", ">", ">=")
_INTS = (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)
_FLOATS = (DataType.FLOAT, DataType.DOUBLE)


@dataclass(frozen=True)
class Condition:
    """``field op value``: e.g. ``Condition("modality", "in", ["image", "video"])``."""

    field: str
    op: str
    value: Any


def literal(dtype: DataType, value: Any, where: str) -> str:
    """``value`` as a Milvus literal of ``dtype``; anything else raises ``InvalidArgument``."""
    if dtype == DataType.VARCHAR:
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return json.dumps(value, ensure_ascii=False)
    if dtype == DataType.BOOL:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where}: expected true or false, got {value!r}")
        return "true" if value else "false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if dtype in _INTS:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidArgument(f"{where}: expected an integer, got {value!r}")
        return str(int(value))
    if dtype in _FLOATS:
        if not math.isfinite(float(value)):
            raise InvalidArgument(f"{where}: expected a finite number, got {value!r}")
        return repr(float(value))
    raise InvalidArgument(f"{where}: cannot filter on a {dtype.name} field")


def expression(columns: Mapping[str, DataType], conditions: Sequence[Condition], view: str) -> str:
    """The conditions joined by ``and``; ``columns`` maps each filterable field to its Milvus type."""
    parts = []
    for c in conditions:
        where = f"filter on {view}.{c.field}"
        if c.field not in columns:
            raise InvalidArgument(f"{where}: no such scalar field; filterable fields: {sorted(columns)}")
        if c.op not in OPERATORS:
            raise InvalidArgument(f"{where}: unknown operator {c.op!r}; use one of {', '.join(OPERATORS)}")
        dtype = columns[c.field]
        if c.op in _ORDERED and dtype in (DataType.VARCHAR, DataType.BOOL):
            raise InvalidArgument(f"{where}: {c.op} needs a numeric field, {c.field} is {dtype.name}")
        if c.op in ("in", "not in"):
            if not isinstance(c.value, (list, tuple)) or not c.value:
                raise InvalidArgument(f"{where}: {c.op} needs a non-empty list, got {c.value!r}")
            values = ", ".join(literal(dtype, v, where) for v in c.value)
            parts.append(f"{c.field} {c.op} [{values}]")
        else:
            parts.append(f"{c.field} {c.op} {literal(dtype, c.value, where)}")
    return " and ".join(f"({p})" for p in parts)
