"""Which model version each embedding view serves, switched in one explicit, reversible step.

Re-materializing after an encoder change appends rows under the new model version offline
(old rows stay), so both spaces are kept. Serving follows the view's current encoder until a
version is *pinned* with :func:`switch`: then Milvus holds exactly that version's rows (they
are rewritten from the offline store, nothing is re-encoded), ``feast materialize`` does not
overwrite them with another version, and search encodes queries with the model that produced
that version. :func:`rollback` returns to the version served before the last switch. A query
that names another version than the served one is refused: vectors of two model versions are
never compared.
"""

from __future__ import annotations

from mm_feast.plugin.compat import online_store_of

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from sqlalchemy import and_, delete, select

from mm_feast.core.errors import InvalidArgument
from mm_feast.stores.lineage import LineageDB, served_table, switches_table
from mm_feast.stores.versions import ServedVersion, cached_pin, forget_pins, keep_served_rows, pinned_model_version, pinned_version  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


class VersionError(InvalidArgument):
    """A model-version request that cannot be honoured; the message says why and what to run.

    A user error (``mm-feast`` prints it on one line, exit 2) and still a ``ValueError``."""


class CrossVersionQueryError(VersionError):
    """A query in one model version against a view serving another."""


@dataclass(frozen=True)
class VersionInfo:
    """One model version present in a view's offline rows."""

    model_version: str
    model_id: str
    rows: int
    keys: int
    first_created: datetime
    last_created: datetime


@dataclass(frozen=True)
class SwitchResult:
    view: str
    action: str
    from_version: Optional[str]
    to_version: str
    rows_written: int
    rows_deleted: int


def _db(store: Any) -> LineageDB:
    return LineageDB.for_repo(Path(store.repo_path))


def _embedding_view(store: Any, view_name: str) -> Any:
    from mm_feast.sources import EmbeddingSource

    view = store.get_feature_view(view_name)
    if not isinstance(view.batch_source, EmbeddingSource):
        raise VersionError(f"view '{view_name}' is not an mm-feast embedding view: it has no model versions")
    return view


def query_encoder(store: Any, view: Any, model_version: Optional[str] = None) -> Any:
    """The encoder whose space ``view`` serves; refuses a query that names another version."""
    from mm_feast.encoders import get_encoder

    source = view.batch_source
    pinned = cached_pin(store.repo_path, view.name, cached=True)
    if pinned is None:
        encoder = source.encoder()
        served = encoder.version
    else:
        encoder = get_encoder(pinned.model_id, pinned.model_revision)
        served = pinned.model_version
        if encoder.version != served:
            raise VersionError(
                f"view '{view.name}' serves model version {served} of {pinned.model_id}, but {pinned.model_id} now"
                f" loads weights of version {encoder.version}: queries cannot be encoded in the served space."
                f" Restore those weights, or serve the new version: mm-feast versions serve {view.name} {encoder.version}"
            )
    refuse_other_version(view.name, served, model_version)
    return encoder


def refuse_other_version(view_name: str, served: str, model_version: Optional[str]) -> None:
    """Raise ``CrossVersionQueryError`` when a query names a version the view does not serve."""
    if model_version is not None and model_version != served:
        raise CrossVersionQueryError(
            f"refused: view '{view_name}' serves model version {served}, the query is in model version"
            f" {model_version}; vectors of two model versions are never compared. Switch the served version"
            f" first (mm-feast versions serve {view_name} {model_version}) or query in version {served}"
        )


def served_version(store: Any, view_name: str, view: Any = None, cached: bool = False) -> str:
    """The model version a view's searches and online rows are in right now. ``view``: the view
    object when the caller has it (saves a registry read); ``cached``: a pin read in the last
    few seconds will do, as for queries (mm_feast.stores.versions.PIN_CACHE_S)."""
    view = view if view is not None else _embedding_view(store, view_name)
    pinned = cached_pin(store.repo_path, view_name, cached=cached)
    if pinned is not None:
        return pinned.model_version
    return view.batch_source.encoder().version


def _offline_rows(store: Any, view: Any) -> pd.DataFrame:
    path = view.batch_source.resolved_path(Path(store.repo_path))
    if not path.exists():
        raise VersionError(f"view '{view.name}' has no offline rows yet ({path}): materialize it first")
    return pd.read_parquet(path)


def list_versions(store: Any, view_name: str) -> list[VersionInfo]:
    """Model versions in a view's offline rows, oldest first."""
    from mm_feast.sources import CREATED_FIELD

    view = _embedding_view(store, view_name)
    frame = _offline_rows(store, view)
    join_key = view.entity_columns[0].name
    out = []
    for version, group in frame.groupby("model_version"):
        out.append(
            VersionInfo(
                model_version=str(version),
                model_id=str(group["model_id"].iloc[0]),
                rows=len(group),
                keys=int(group[join_key].nunique()),
                first_created=pd.Timestamp(group[CREATED_FIELD].min()).to_pydatetime(),
                last_created=pd.Timestamp(group[CREATED_FIELD].max()).to_pydatetime(),
            )
        )
    return sorted(out, key=lambda v: v.first_created)


@dataclass(frozen=True)
class VersionRows:
    """A view's offline rows, and the newest row per key of one model version among them."""

    view: Any
    join_key: str
    frame: pd.DataFrame
    rows: pd.DataFrame


def version_rows(store: Any, view_name: str, model_version: str) -> VersionRows:
    """The rows a view would serve under ``model_version`` (refused when it has none)."""
    from mm_feast.sources import CREATED_FIELD

    view = _embedding_view(store, view_name)
    frame = _offline_rows(store, view)
    available = sorted(set(frame["model_version"]))
    if model_version not in available:
        raise VersionError(f"view '{view_name}' has no rows of model version {model_version}; it has {available}")
    join_key = view.entity_columns[0].name
    rows = frame[frame["model_version"] == model_version].sort_values(CREATED_FIELD).groupby(join_key).tail(1)
    return VersionRows(view, join_key, frame, rows)


def version_encoder(store: Any, found: VersionRows, model_version: str) -> Any:
    """The encoder that made ``model_version`` of a view (to put text in that same space)."""
    from mm_feast.encoders import get_encoder

    model_id = str(found.rows["model_id"].iloc[0])
    encoder = get_encoder(model_id, _revision_for(_db(store), found.view, model_id, model_version))
    if encoder.version != model_version:
        raise VersionError(f"model version {model_version} of view '{found.view.name}' cannot be loaded: {model_id}"
                           f" now loads version {encoder.version}; restore the weights that made {model_version}")
    return encoder


def switch(store: Any, view_name: str, model_version: str, action: str = "switch") -> SwitchResult:
    """Serve ``model_version``: pin it, rewrite the online rows from the offline store, record it."""
    import pyarrow as pa

    from mm_feast.plugin.compat import entity_key_hex, online_rows
    from mm_feast.sources import CREATED_FIELD

    found = version_rows(store, view_name, model_version)
    view, frame, rows, join_key = found.view, found.frame, found.rows, found.join_key
    db = _db(store)
    before = served_version(store, view_name)
    stale_keys = sorted(set(frame[join_key]) - set(rows[join_key]))
    first = rows.iloc[0]
    now = datetime.now(timezone.utc)
    with db.engine.begin() as conn:
        conn.execute(delete(served_table).where(and_(served_table.c.project == db.project, served_table.c.view == view_name)))
        conn.execute(
            served_table.insert(),
            [{
                "project": db.project, "view": view_name, "model_id": str(first["model_id"]),
                "model_revision": _revision_for(db, view, str(first["model_id"]), model_version),
                "model_version": model_version, "switched_at": now,
            }],
        )
    forget_pins()
    columns = [join_key, *[f.name for f in view.features if f.name != join_key], view.batch_source.timestamp_field, CREATED_FIELD]
    table = pa.Table.from_pandas(rows[[c for c in dict.fromkeys(columns) if c in rows.columns]].reset_index(drop=True), preserve_index=False)
    version = store.config.entity_key_serialization_version
    stale_pks = [entity_key_hex(join_key, str(k), version) for k in stale_keys]
    # replace, not a newer-wins write: the version switched to may hold older rows than the served one
    online_store_of(store).write_current(store.config, view, online_rows(table, view), delete_pks=stale_pks)
    deleted = len(stale_pks)
    with db.engine.begin() as conn:
        conn.execute(
            switches_table.insert(),
            [{
                "project": db.project, "view": view_name, "action": action, "from_version": before,
                "to_version": model_version, "at": now, "rows_written": len(rows), "rows_deleted": deleted,
            }],
        )
    logger.info("%s: %s %s -> %s (%d rows written, %d keys removed)", view_name, action, before, model_version, len(rows), deleted)
    return SwitchResult(view_name, action, before, model_version, len(rows), deleted)


def _revision_for(db: LineageDB, view: Any, model_id: str, model_version: str) -> Optional[str]:
    """The revision that loads ``model_version``: from lineage, else the view's own revision."""
    recorded = db.model_for_version(model_version)
    if recorded is not None and recorded[0] == model_id:
        return recorded[1]
    return view.batch_source.revision if view.batch_source.model_id == model_id else None


def history(store: Any, view_name: str) -> list[dict[str, Any]]:
    """Every switch and rollback of a view, oldest first."""
    db = _db(store)
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(switches_table)
            .where(and_(switches_table.c.project == db.project, switches_table.c.view == view_name))
            .order_by(switches_table.c.id)
        ).mappings().all()
    return [dict(r) for r in rows]


def rollback(store: Any, view_name: str) -> SwitchResult:
    """Serve again the version that was served before the last switch."""
    past = history(store, view_name)
    if not past or not past[-1]["from_version"]:
        raise VersionError(f"view '{view_name}' has no earlier served version to roll back to")
    return switch(store, view_name, past[-1]["from_version"], action="rollback")
