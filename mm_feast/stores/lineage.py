"""Lineage tables in the Feast registry's SQL database, beside Feast's own tables.

The database is the one named by ``registry: {registry_type: sql, path: <SQLAlchemy URL>}``
in ``feature_store.yaml`` (SQLite by default, PostgreSQL for teams), so lineage is backed up,
shared and access-controlled together with the registry. With a file registry, the tables go
to ``lineage.db`` (SQLite) beside the registry file. ``MM_FEAST_LINEAGE_URL`` overrides both.

A relative SQLite path is resolved against the feature repo, not the process's working
directory (Feast itself resolves it against the working directory; see :func:`open_store`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from mm_feast.core.records import EncoderInfo, ErasureRecord, LineageRecord, ParentRef, SafetyRecord

logger = logging.getLogger(__name__)

URL_ENV = "MM_FEAST_LINEAGE_URL"
FEATURE_STORE_YAML = "feature_store.yaml"
_CHUNK = 500  # keys per IN (...) clause: inside SQLite's and PostgreSQL's parameter limits

metadata = MetaData()

records_table = Table(
    "mm_lineage_records",
    metadata,
    Column("record_key", String(32), primary_key=True),
    Column("project", String(255), nullable=False),
    Column("lineage_id", String(64), nullable=False, index=True),
    Column("source", String(255), nullable=False),
    Column("view", String(255), nullable=False),
    Column("entity_key", String(1024), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("item_id", String(1024), nullable=False),
    Column("uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("modality", String(32), nullable=False),
    Column("position", String(255), nullable=False),
    Column("model_id", String(1024), nullable=False),
    Column("model_revision", String(255)),
    Column("model_version", String(64), nullable=False),
    Column("preprocess_hash", String(64), nullable=False),
    Column("code_version", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event_timestamp", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("erasure_id", String(64)),
    Index("ix_mm_lineage_records_project_entity", "project", "entity_key"),
    Index("ix_mm_lineage_records_project_sha", "project", "sha256"),
)

parents_table = Table(
    "mm_lineage_parents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_key", String(32), nullable=False, index=True),
    Column("ordinal", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("modality", String(32), nullable=False),
    Column("position", String(255), nullable=False),
    Column("start_s", Float),
    Column("end_s", Float),
    Column("char_start", Integer),
    Column("char_end", Integer),
    Column("page", Integer),
    Column("sample_rate", Integer),
    Column("parent_lineage_id", String(64), index=True),
    Column("parent_source", String(255)),
    Column("parent_entity_key", String(1024)),
)

preprocess_table = Table(
    "mm_lineage_preprocess",
    metadata,
    Column("preprocess_hash", String(64), primary_key=True),
    Column("config_json", Text, nullable=False),
)

models_table = Table(
    "mm_lineage_models",
    metadata,
    Column("project", String(255), primary_key=True),
    Column("model_id", String(1024), primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("model_revision", String(255)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

erasures_table = Table(
    "mm_lineage_erasures",
    metadata,
    Column("erasure_id", String(64), primary_key=True),
    Column("project", String(255), nullable=False),
    Column("target", Text, nullable=False),
    Column("sha256s", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("records", Integer, nullable=False),
    Column("offline_rows", Integer, nullable=False),
    Column("online_rows", Integer, nullable=False),
    Column("views", Text, nullable=False),
)

safety_table = Table(
    "mm_safety_verdicts",  # the content filters' verdict per file content, before any model saw it
    metadata,
    Column("project", String(255), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("modality", String(32), primary_key=True),
    Column("thresholds_hash", String(64), primary_key=True),
    Column("uri", Text, nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("reasons_json", Text, nullable=False),
    Column("findings_json", Text, nullable=False),
    Column("errors_json", Text, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

release_gates_table = Table(
    "mm_release_gates",  # each bias check of a promotion: passed, refused, or overridden with a reason
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(255), nullable=False),
    Column("view", String(255), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("test", String(255), nullable=False),
    Column("effect_size", Float, nullable=False),
    Column("p_value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("outcome", String(16), nullable=False),  # passed, refused, overridden
    Column("override_reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
)

served_table = Table(
    "mm_served_versions",
    metadata,
    Column("project", String(255), primary_key=True),
    Column("view", String(255), primary_key=True),
    Column("model_id", String(1024), nullable=False),
    Column("model_revision", String(255)),
    Column("model_version", String(64), nullable=False),
    Column("switched_at", DateTime(timezone=True), nullable=False),
)

switches_table = Table(
    "mm_version_switches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(255), nullable=False),
    Column("view", String(255), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", String(64)),
    Column("to_version", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("rows_written", Integer, nullable=False),
    Column("rows_deleted", Integer, nullable=False),
)

quarantine_table = Table(
    "mm_quarantine",  # every quarantine record; a release marks its records released (the archive)
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(255), nullable=False),
    Column("source", String(255), nullable=False),
    Column("item_id", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("modality", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("run_id", Text, nullable=False),
    Column("expectations", Text, nullable=False),
    Column("observed", Text, nullable=False),
    Column("locator", Text, nullable=False),
    Column("model_version", Text, nullable=False),  # pushed rows bring their own: any length
    Column("released", Integer, nullable=False),  # 0 open, 1 released (kept as the archive)
    Column("release_mode", String(16), nullable=False),
    Column("released_at", String(64), nullable=False),
    Column("release_note", Text, nullable=False),
    Index("ix_mm_quarantine_lookup", "project", "source", "released"),
)

quarantine_releases_table = Table(
    "mm_quarantine_releases",  # the log of `mm-feast quarantine release`
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(255), nullable=False),
    Column("qid", String(32), nullable=False),
    Column("source", String(255), nullable=False),
    Column("item_id", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("expectations_json", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("at", String(64), nullable=False),
)

quarantine_imports_table = Table(
    "mm_quarantine_imports",  # quarantine parquet of older versions already imported, by content
    metadata,
    Column("project", String(255), primary_key=True),
    Column("file_sha256", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


# --- where the database is -------------------------------------------------------------------


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def resolve_sqlite_url(url: str, repo_path: Path) -> str:
    """Make a relative SQLite path absolute under the repo; other URLs are returned unchanged."""
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((Path(repo_path) / database).resolve())).render_as_string(hide_password=False)


@dataclass(frozen=True)
class LineageTarget:
    """The database URL and the Feast project that lineage rows belong to."""

    url: str
    project: str


_TARGETS: dict[tuple[str, float], LineageTarget] = {}


def lineage_target(repo_path: Optional[Path]) -> LineageTarget:
    """Derive the lineage database from the repo's ``feature_store.yaml`` (cached per file mtime)."""
    repo = Path(repo_path).resolve() if repo_path is not None else Path.cwd()
    yaml_path = repo / FEATURE_STORE_YAML
    override = os.environ.get(URL_ENV)
    if not yaml_path.exists():
        url = override or f"sqlite:///{repo / 'data' / 'lineage.db'}"
        return LineageTarget(resolve_sqlite_url(url, repo), "")
    cache_key = (str(yaml_path), yaml_path.stat().st_mtime)
    target = _TARGETS.get(cache_key)
    if target is None:
        # Read as Feast does (env vars expanded) but without importing Feast: seconds per CLI call.
        raw = yaml.safe_load(os.path.expandvars(yaml_path.read_text())) or {}
        registry = raw.get("registry") or {}
        if isinstance(registry, str):
            registry = {"path": registry}
        registry_type, path = registry.get("registry_type", "file"), str(registry.get("path", ""))
        if registry_type == "sql":
            # Feast rewrites plain postgresql:// to the psycopg3 driver; so do we.
            url = "postgresql+psycopg://" + path[len("postgresql://") :] if path.startswith("postgresql://") else path
        elif registry_type == "file" and path and "://" not in path:
            registry_file = Path(path)
            if not registry_file.is_absolute():
                registry_file = repo / registry_file
            url = f"sqlite:///{registry_file.parent / 'lineage.db'}"
        else:
            url = f"sqlite:///{repo / 'data' / 'lineage.db'}"
        if not url:
            raise ValueError(f"{yaml_path}: registry_type sql needs a SQLAlchemy URL in registry.path")
        target = LineageTarget(resolve_sqlite_url(url, repo), str(raw.get("project", "")))
        _TARGETS[cache_key] = target
    if override:
        return LineageTarget(resolve_sqlite_url(override, repo), target.project)
    return target


def database_exists(target: LineageTarget) -> bool:
    """False for a SQLite file not created yet (so read-only checks need not create it)."""
    parsed = make_url(target.url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return True
    return Path(parsed.database).exists()


def open_store(repo_path: str | Path) -> Any:
    """A ``FeatureStore`` for the repo, with a relative SQLite registry URL resolved against it.

    Feast hands the registry URL to SQLAlchemy unchanged, so ``sqlite:///data/registry.sqlite``
    means "relative to the working directory": right for the feast CLI (it runs in the repo),
    wrong for serving code started elsewhere. Use this instead of ``FeatureStore(repo_path=...)``.

    Neither SQLite nor Milvus Lite creates directories: the directory of each local file the
    config names (registry, Milvus Lite / SQLite online store) is created when it lies inside the
    repo (``data/``). A repo without ``feature_store.yaml``, an invalid one, or a file outside the
    repo in a directory that does not exist raises ``RepoConfigError`` (one line, exit 2).
    """
    from feast.repo_config import FeastConfigError, load_repo_config

    from mm_feast.stores.feature_store import MmFeatureStore

    from mm_feast.core.errors import RepoConfigError, one_line

    repo = Path(repo_path).resolve()
    yaml_path = repo / FEATURE_STORE_YAML
    if not yaml_path.is_file():
        if not repo.is_dir():
            raise RepoConfigError(f"no such repo directory {repo} (--repo names a Feast repo: a directory with {FEATURE_STORE_YAML})")
        raise RepoConfigError(f"{repo} is not a Feast repo: it has no {FEATURE_STORE_YAML}")
    try:
        config = load_repo_config(repo, yaml_path)
    except FeastConfigError as exc:
        raise RepoConfigError(f"{yaml_path} is not a valid Feast config: {one_line(exc, limit=600)}") from exc
    except (yaml.YAMLError, TypeError) as exc:
        raise RepoConfigError(f"{yaml_path} is not a YAML mapping of Feast settings: {one_line(exc, limit=300)}") from exc
    registry = config.registry
    if getattr(registry, "registry_type", "") == "sql":
        registry.path = resolve_sqlite_url(registry.path, repo)
        if getattr(registry, "read_path", None):
            registry.read_path = resolve_sqlite_url(registry.read_path, repo)
    for key, path in _local_store_files(config, repo):
        _ensure_parent(key, path, repo, yaml_path)
    return MmFeatureStore(repo_path=str(repo), config=config)


def _local_store_files(config: Any, repo: Path) -> list[tuple[str, Path]]:
    """(yaml key, absolute path) of each local file the stores will open: registry, online store."""
    files: list[tuple[str, Path]] = []
    registry = config.registry
    registry_path = str(getattr(registry, "path", "") or "")
    if getattr(registry, "registry_type", "file") == "sql":
        parsed = make_url(registry_path) if registry_path else None
        database = parsed.database if parsed is not None and parsed.drivername.startswith("sqlite") else None
        if database and database != ":memory:" and not database.startswith("file:"):
            files.append(("registry.path", Path(database)))
    elif registry_path and "://" not in registry_path:
        files.append(("registry.path", Path(registry_path)))
    online = getattr(config, "online_store", None)
    online_path = getattr(online, "path", None)
    if isinstance(online_path, str) and online_path and not getattr(online, "uri", None) and "://" not in online_path:
        files.append(("online_store.path", Path(online_path)))
    return [(key, path if path.is_absolute() else repo / path) for key, path in files]


def _ensure_parent(key: str, path: Path, repo: Path, yaml_path: Path) -> None:
    from mm_feast.core.errors import RepoConfigError

    parent = path.parent.resolve()
    if parent.is_dir():
        return
    if not parent.is_relative_to(repo):
        raise RepoConfigError(f"{yaml_path}: {key} {path} lies in {parent}, which does not exist: create it first")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepoConfigError(f"{yaml_path}: {key} {path}: cannot create the directory {parent}: {exc.strerror or exc}") from exc
    logger.info("created %s for %s (%s)", parent, key, path.name)


# --- engine --------------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the feast CLI (materialize) and a serving process share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_for(url: str) -> Engine:
    """One engine per URL per process; the lineage tables are created on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            is_sqlite = url.startswith("sqlite")
            if is_sqlite:
                database = make_url(url).database
                if database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
            if is_sqlite:
                event.listen(engine, "connect", _sqlite_pragmas)
            _create_tables(engine)
            _ENGINES[url] = engine
        return engine


# Any constant: the key of the PostgreSQL advisory lock that serialises creating the tables.
_CREATE_LOCK_KEY = 0x6D6D_FEA5


def _create_tables(engine: Engine) -> None:
    """Create the tables once, even when processes start at once on an empty database.

    ``create_all`` checks, then creates: two ``feast materialize`` processes on a fresh database
    both see no table and the second CREATE fails. On PostgreSQL a transaction-scoped advisory
    lock serialises them. SQLite has no such lock: there a loser's "already exists" is caught
    and the check runs again. Each such failure means another process created one more table, so
    one try per table plus one always ends with every table (one retry was not enough: with four
    processes a loser can lose again on the next table).
    """
    if engine.dialect.name != "postgresql":
        for _ in range(len(metadata.tables)):
            try:
                metadata.create_all(engine)
                return
            except OperationalError as exc:
                if "already exists" not in str(exc):
                    raise
        metadata.create_all(engine)
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY})
        metadata.create_all(conn)


def dispose_engines() -> None:
    """Close pooled connections (tests, and before another process takes over a SQLite file)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- the store -----------------------------------------------------------------------------


class LineageDB:
    """Reads and writes lineage records of one project in one database."""

    def __init__(self, target: LineageTarget):
        self.target = target
        self.project = target.project
        self.engine = engine_for(target.url)

    @staticmethod
    def for_repo(repo_path: Optional[Path]) -> "LineageDB":
        return LineageDB(lineage_target(repo_path))

    # -- writing --------------------------------------------------------------------------

    def write(self, records: Sequence[LineageRecord], preprocess: dict[str, str]) -> int:
        """Insert records not yet stored (same key = same row: re-runs are no-ops); returns the count."""
        if not records:
            return 0
        by_key = {r.key: r for r in records}
        keys = list(by_key)
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            existing: set[str] = set()
            for chunk in _chunks(keys):
                existing.update(
                    conn.execute(select(records_table.c.record_key).where(records_table.c.record_key.in_(chunk))).scalars()
                )
            new = [by_key[k] for k in keys if k not in existing]
            if not new:
                return 0
            conn.execute(records_table.insert(), [_record_row(r) for r in new])
            parent_rows = [_parent_row(r.key, p) for r in new for p in r.parents]
            if parent_rows:
                conn.execute(parents_table.insert(), parent_rows)
            known_hashes: set[str] = set()
            for chunk in _chunks(list(preprocess)):
                known_hashes.update(
                    conn.execute(
                        select(preprocess_table.c.preprocess_hash).where(preprocess_table.c.preprocess_hash.in_(chunk))
                    ).scalars()
                )
            missing = [{"preprocess_hash": h, "config_json": j} for h, j in preprocess.items() if h not in known_hashes]
            if missing:
                conn.execute(preprocess_table.insert(), missing)
            models = {(r.encoder.model_id, r.encoder.model_version): r.encoder.model_revision for r in new}
            for (model_id, version), revision in models.items():
                found = conn.execute(
                    select(models_table.c.model_id).where(
                        and_(
                            models_table.c.project == self.project,
                            models_table.c.model_id == model_id,
                            models_table.c.model_version == version,
                        )
                    )
                ).first()
                if found is None:
                    conn.execute(
                        models_table.insert(),
                        [{"project": self.project, "model_id": model_id, "model_version": version, "model_revision": revision, "first_seen": now}],
                    )
        return len(new)

    def write_safety(self, verdicts: Sequence[SafetyRecord]) -> int:
        """Store each verdict, replacing an earlier one for the same content hash, modality and
        thresholds: a re-check (Tesseract installed since, a filter changed) supersedes it."""
        rows = {(v.sha256, v.modality, v.thresholds_hash): v for v in verdicts}
        if not rows:
            return 0
        with self.engine.begin() as conn:
            for (sha, modality, digest) in rows:
                conn.execute(safety_table.delete().where(and_(
                    safety_table.c.project == self.project, safety_table.c.sha256 == sha,
                    safety_table.c.modality == modality, safety_table.c.thresholds_hash == digest)))
            conn.execute(safety_table.insert(), [
                {"project": self.project, "sha256": v.sha256, "modality": v.modality, "thresholds_hash": v.thresholds_hash,
                 "uri": v.uri, "verdict": v.verdict, "reasons_json": json.dumps(v.reasons),
                 "findings_json": json.dumps(v.findings), "errors_json": json.dumps(v.errors), "checked_at": v.checked_at}
                for v in rows.values()])
        return len(rows)

    def safety_for(self, sha256s: Sequence[str]) -> dict[str, SafetyRecord]:
        """The latest verdict on each content hash (any modality, any thresholds)."""
        found: dict[str, SafetyRecord] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(sha256s))):
                rows = conn.execute(select(safety_table).where(and_(safety_table.c.project == self.project, safety_table.c.sha256.in_(chunk)))
                                    .order_by(safety_table.c.checked_at)).mappings().all()
                for r in rows:
                    found[r["sha256"]] = SafetyRecord(
                        self.project, r["sha256"], r["modality"], r["uri"], r["verdict"], json.loads(r["reasons_json"]),
                        json.loads(r["findings_json"]), json.loads(r["errors_json"]), r["thresholds_hash"], _utc(r["checked_at"]))
        return found

    def erase_safety(self, uris: Sequence[str], sha256s: Sequence[str]) -> int:
        """Delete the verdicts on these files and on every copy of their content (an erasure of a
        file that was never embedded, e.g. one the filters blocked, still removes what its
        findings quoted). Returns how many verdicts went."""
        removed = 0
        with self.engine.begin() as conn:
            contents = set(sha256s)
            for chunk in _chunks(sorted(set(uris))):
                contents.update(conn.execute(select(safety_table.c.sha256).where(and_(
                    safety_table.c.project == self.project, safety_table.c.uri.in_(chunk)))).scalars())
            for chunk in _chunks(sorted(contents)):
                removed += conn.execute(safety_table.delete().where(and_(
                    safety_table.c.project == self.project, safety_table.c.sha256.in_(chunk)))).rowcount or 0
        return removed

    def record_release_gate(self, view: str, model_version: str, test: str, effect_size: float, p_value: float,
                            threshold: float, outcome: str, override_reason: Optional[str] = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(release_gates_table.insert(), [{
                "project": self.project, "view": view, "model_version": model_version, "test": test,
                "effect_size": float(effect_size), "p_value": float(p_value), "threshold": float(threshold), "outcome": outcome,
                "override_reason": override_reason, "at": datetime.now(timezone.utc)}])

    def release_gates(self, view: Optional[str] = None) -> list[dict[str, Any]]:
        """Every recorded bias check of a promotion, oldest first."""
        where = release_gates_table.c.project == self.project
        if view:
            where = and_(where, release_gates_table.c.view == view)
        with self.engine.connect() as conn:
            rows = conn.execute(select(release_gates_table).where(where).order_by(release_gates_table.c.id)).mappings().all()
        return [{**{k: v for k, v in r.items() if k not in ("id", "project")}, "at": _utc(r["at"])} for r in rows]

    def mark_deleted(self, keys: Sequence[str], erasure: ErasureRecord) -> None:
        """Keep the records (the audit trail) but mark them as erased, in one transaction with the
        audit row; the content filters' verdicts on the erased content go (they quote it)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(erasure.sha256s)):
                conn.execute(safety_table.delete().where(and_(safety_table.c.project == self.project, safety_table.c.sha256.in_(chunk))))
            for chunk in _chunks(list(keys)):
                conn.execute(
                    update(records_table)
                    .where(records_table.c.record_key.in_(chunk))
                    .values(deleted_at=erasure.at, erasure_id=erasure.erasure_id)
                )
            conn.execute(
                erasures_table.insert(),
                [
                    {
                        "erasure_id": erasure.erasure_id,
                        "project": erasure.project,
                        "target": erasure.target,
                        "sha256s": json.dumps(erasure.sha256s),
                        "reason": erasure.reason,
                        "at": erasure.at,
                        "records": erasure.records,
                        "offline_rows": erasure.offline_rows,
                        "online_rows": erasure.online_rows,
                        "views": json.dumps(erasure.views),
                    }
                ],
            )

    def retire_unserved(self, view: str, served: set[tuple[str, str]], at: datetime) -> int:
        """Mark the live records of ``view`` whose (entity key, lineage id) is not served any more
        (its file changed or left the collection) as retired, so only served rows read as current.
        A retired record has ``deleted_at`` but no ``erasure_id``; an erased one has both."""
        with self.engine.begin() as conn:
            live = conn.execute(
                select(records_table.c.record_key, records_table.c.entity_key, records_table.c.lineage_id).where(
                    and_(records_table.c.project == self.project, records_table.c.view == view, records_table.c.deleted_at.is_(None))
                )
            ).all()
            retired = [r.record_key for r in live if (r.entity_key, r.lineage_id) not in served]
            for chunk in _chunks(retired):
                conn.execute(update(records_table).where(records_table.c.record_key.in_(chunk)).values(deleted_at=at))
        return len(retired)

    # -- reading --------------------------------------------------------------------------

    def _records(self, where: Any) -> list[LineageRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records_table).where(and_(records_table.c.project == self.project, where)).order_by(records_table.c.created_at.desc())
            ).mappings().all()
            keys = [r["record_key"] for r in rows]
            parents: dict[str, list[ParentRef]] = {k: [] for k in keys}
            for chunk in _chunks(keys):
                for p in conn.execute(
                    select(parents_table).where(parents_table.c.record_key.in_(chunk)).order_by(parents_table.c.ordinal)
                ).mappings():
                    parents[p["record_key"]].append(_parent_ref(p))
        return [_record_from_row(r, parents[r["record_key"]]) for r in rows]

    def by_lineage_ids(self, lineage_ids: Sequence[str]) -> list[LineageRecord]:
        out: list[LineageRecord] = []
        for chunk in _chunks(list(dict.fromkeys(lineage_ids))):
            out.extend(self._records(records_table.c.lineage_id.in_(chunk)))
        return out

    def by_lineage_prefix(self, prefix: str) -> list[LineageRecord]:
        return self._records(records_table.c.lineage_id.startswith(prefix))

    def by_entity_key(self, entity_key: str, view: Optional[str] = None) -> list[LineageRecord]:
        where = records_table.c.entity_key == entity_key
        if view:
            where = and_(where, records_table.c.view == view)
        return self._records(where)

    def by_view(self, view: str) -> list[LineageRecord]:
        return self._records(records_table.c.view == view)

    def record(self, source: str, entity_key: str, lineage_id: str) -> Optional[LineageRecord]:
        found = self._records(
            and_(
                records_table.c.source == source,
                records_table.c.entity_key == entity_key,
                records_table.c.lineage_id == lineage_id,
            )
        )
        return found[0] if found else None

    def children_of(self, lineage_ids: Sequence[str]) -> list[LineageRecord]:
        """Records that list any of ``lineage_ids`` as a parent (one level down)."""
        keys: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(lineage_ids)):
                keys.update(
                    conn.execute(
                        select(parents_table.c.record_key).where(parents_table.c.parent_lineage_id.in_(chunk))
                    ).scalars()
                )
        out: list[LineageRecord] = []
        for chunk in _chunks(sorted(keys)):
            out.extend(self._records(records_table.c.record_key.in_(chunk)))
        return out

    def derived_from_file(self, uri: Optional[str] = None, sha256: Optional[str] = None) -> list[LineageRecord]:
        """Records with a raw parent in this file (by uri: every version that was ever ingested)."""
        condition = parents_table.c.uri == uri if uri is not None else parents_table.c.sha256 == sha256
        with self.engine.connect() as conn:
            keys = list(
                conn.execute(
                    select(parents_table.c.record_key).where(and_(parents_table.c.role == "raw", condition)).distinct()
                ).scalars()
            )
        out: list[LineageRecord] = []
        for chunk in _chunks(keys):
            out.extend(self._records(records_table.c.record_key.in_(chunk)))
        return out

    def preprocess_config(self, preprocess_hash: str) -> Optional[dict[str, Any]]:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(preprocess_table.c.config_json).where(preprocess_table.c.preprocess_hash == preprocess_hash)
            ).scalar()
        return json.loads(found) if found else None

    def model_for_version(self, model_version: str) -> Optional[tuple[str, Optional[str]]]:
        """(model_id, revision) that produced ``model_version`` in this project, if recorded."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(models_table.c.model_id, models_table.c.model_revision)
                .where(and_(models_table.c.project == self.project, models_table.c.model_version == model_version))
                .order_by(models_table.c.first_seen.desc())
            ).first()
        return (row[0], row[1]) if row else None

    def erased_sha256s(self) -> set[str]:
        """Content hashes erased by ``impacted --delete``: ingestion must not bring them back."""
        with self.engine.connect() as conn:
            values = conn.execute(select(erasures_table.c.sha256s).where(erasures_table.c.project == self.project)).scalars()
            return {sha for value in values for sha in json.loads(value)}

    def erasures(self) -> list[ErasureRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(erasures_table).where(erasures_table.c.project == self.project).order_by(erasures_table.c.at)
            ).mappings().all()
        return [
            ErasureRecord(
                erasure_id=r["erasure_id"],
                project=r["project"],
                target=r["target"],
                sha256s=json.loads(r["sha256s"]),
                reason=r["reason"],
                at=_utc(r["at"]),  # type: ignore[arg-type]
                records=r["records"],
                offline_rows=r["offline_rows"],
                online_rows=r["online_rows"],
                views=json.loads(r["views"]),
            )
            for r in rows
        ]


def _record_row(r: LineageRecord) -> dict[str, Any]:
    return {
        "record_key": r.key,
        "project": r.project,
        "lineage_id": r.lineage_id,
        "source": r.source,
        "view": r.view,
        "entity_key": r.entity_key,
        "kind": r.kind,
        "item_id": r.item_id,
        "uri": r.uri,
        "sha256": r.sha256,
        "modality": r.modality,
        "position": r.position,
        "model_id": r.encoder.model_id,
        "model_revision": r.encoder.model_revision,
        "model_version": r.encoder.model_version,
        "preprocess_hash": r.encoder.preprocess_hash,
        "code_version": r.encoder.code_version,
        "run_id": r.run_id,
        "created_at": r.created_at,
        "event_timestamp": r.event_timestamp,
        "deleted_at": r.deleted_at,
        "erasure_id": r.erasure_id,
    }


def _parent_row(record_key: str, p: ParentRef) -> dict[str, Any]:
    return {
        "record_key": record_key,
        "ordinal": p.ordinal,
        "role": p.role,
        "uri": p.uri,
        "sha256": p.sha256,
        "modality": p.modality,
        "position": p.position,
        "start_s": p.start_s,
        "end_s": p.end_s,
        "char_start": p.char_start,
        "char_end": p.char_end,
        "page": p.page,
        "sample_rate": p.sample_rate,
        "parent_lineage_id": p.parent_lineage_id,
        "parent_source": p.parent_source,
        "parent_entity_key": p.parent_entity_key,
    }


def _parent_ref(row: Any) -> ParentRef:
    return ParentRef(
        ordinal=row["ordinal"],
        role=row["role"],
        uri=row["uri"],
        sha256=row["sha256"],
        modality=row["modality"],
        position=row["position"],
        start_s=row["start_s"],
        end_s=row["end_s"],
        char_start=row["char_start"],
        char_end=row["char_end"],
        page=row["page"],
        sample_rate=row["sample_rate"],
        parent_lineage_id=row["parent_lineage_id"],
        parent_source=row["parent_source"],
        parent_entity_key=row["parent_entity_key"],
    )


def _record_from_row(row: Any, parents: list[ParentRef]) -> LineageRecord:
    return LineageRecord(
        lineage_id=row["lineage_id"],
        project=row["project"],
        source=row["source"],
        view=row["view"],
        entity_key=row["entity_key"],
        kind=row["kind"],
        item_id=row["item_id"],
        uri=row["uri"],
        sha256=row["sha256"],
        modality=row["modality"],
        position=row["position"],
        encoder=EncoderInfo(
            model_id=row["model_id"],
            model_revision=row["model_revision"],
            model_version=row["model_version"],
            preprocess_hash=row["preprocess_hash"],
            code_version=row["code_version"],
        ),
        run_id=row["run_id"],
        created_at=_utc(row["created_at"]),  # type: ignore[arg-type]
        event_timestamp=_utc(row["event_timestamp"]),
        parents=parents,
        deleted_at=_utc(row["deleted_at"]),
        erasure_id=row["erasure_id"],
    )
