"""Bias in a view's embedding space, measured on the rows of one model version, and the release
gate that keeps a version over the repo's limit from being served.

For each check of ``<repo>/bias/checks.yaml`` (``mm_feast.governance.bias_checks``):

* **association**: WEAT with the two sets of text concepts as targets (encoded by the view's own
  model, in its space) and the two groups of the view's items (images, frames, audio windows)
  as attributes, so "CEO" vs "nurse" phrases are tested against two groups of pictures;
* **retrieval skew**: for each neutral query, each group's share of the top K hits against its
  share of the collection (1.0 = no skew).

Everything is computed from the offline rows of the version, so a candidate version is measured
before it is served, without touching Milvus."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from mm_feast.core.errors import InvalidArgument
from mm_feast.core.schema import VECTOR_FIELD
from mm_feast.encoders.base import l2_normalize
from mm_feast.governance.bias import WeatResult, weat
from mm_feast.governance.bias_checks import BiasCheck, BiasConfig, GroupSpec, load_bias_config
from mm_feast.services.versions import SwitchResult, VersionRows, served_version, switch, version_encoder, version_rows
from mm_feast.stores.lineage import LineageDB

logger = logging.getLogger(__name__)


class ReleaseRefused(InvalidArgument):
    """A model version whose bias goes over the repo's limit, promoted without an override reason."""


@dataclass(frozen=True)
class SkewRow:
    query: str
    top_share: dict[str, float]  # group -> share of the top K hits


@dataclass
class CheckResult:
    check: BiasCheck
    model_version: str
    weat: WeatResult
    association: dict[str, list[float]]  # concept set -> s(w) of each phrase (cos to group A − cos to group B)
    group_sizes: dict[str, int]
    collection_share: dict[str, float]  # group -> share of the view's items
    skew: list[SkewRow] = field(default_factory=list)
    items: int = 0

    def over(self, limit: float) -> bool:
        return abs(self.weat.effect_size) > limit


def _attributes(found: VersionRows, repo_path: Path) -> pd.DataFrame:
    """Each row's manifest columns (by item_id), for groups chosen by a column."""
    listed = found.view.batch_source.media.listed_items(repo_path)
    table = pd.DataFrame([{**row.attributes, "item_id": row.item_id} for row in listed])
    return found.rows[["item_id"]].merge(table, on="item_id", how="left") if not table.empty else found.rows[["item_id"]]


def _members(group: GroupSpec, vectors: np.ndarray, attributes: pd.DataFrame, encoder: Any, check: BiasCheck) -> np.ndarray:
    """Row positions of the group's items."""
    if group.query is not None:
        query = encoder.encode("text", [group.query])[0]  # encoders return unit rows
        return np.argsort(-(vectors @ query), kind="stable")[: group.top]
    if group.column not in attributes.columns:
        raise InvalidArgument(f"bias check '{check.name}': group '{group.name}' reads manifest column '{group.column}',"
                              f" which the items of view '{check.view}' do not have")
    values = attributes[group.column].fillna("").astype(str)
    chosen = values == group.equals if group.equals is not None else values.str.contains(str(group.contains), regex=False)
    return np.flatnonzero(chosen.to_numpy())


def run_check(store: Any, check: BiasCheck, config: BiasConfig, model_version: Optional[str] = None) -> CheckResult:
    """One check on one model version of its view (the served one by default)."""
    version = model_version or served_version(store, check.view)
    found = version_rows(store, check.view, version)
    encoder = version_encoder(store, found, version)
    vectors = l2_normalize(np.stack(found.rows[VECTOR_FIELD].to_numpy()).astype(np.float64))
    attributes = _attributes(found, Path(store.repo_path))
    members = {g.name: _members(g, vectors, attributes, encoder, check) for g in check.groups}
    for name, rows in members.items():
        if len(rows) == 0:
            raise InvalidArgument(f"bias check '{check.name}': group '{name}' has no items in view '{check.view}'"
                                  f" (model version {version})")
    overlap = set(members[check.groups[0].name]) & set(members[check.groups[1].name])
    if overlap:
        raise InvalidArgument(f"bias check '{check.name}': {len(overlap)} item(s) are in both groups; the groups must not overlap")
    (x_name, _), (y_name, _) = check.concepts
    concept_vectors = {name: encoder.encode("text", list(phrases)) for name, phrases in check.concepts}
    a, b = (vectors[members[g.name]] for g in check.groups)
    result = weat(concept_vectors[x_name], concept_vectors[y_name], a, b, config.permutations, config.seed)
    association = {name: ((v @ a.T).mean(axis=1) - (v @ b.T).mean(axis=1)).tolist() for name, v in concept_vectors.items()}
    total = len(vectors)
    out = CheckResult(check, version, result, association, {n: len(m) for n, m in members.items()},
                      {n: len(m) / total for n, m in members.items()}, items=total)
    k = min(config.top_k, total)
    for query in check.neutral_queries:
        q = encoder.encode("text", [query])[0]
        top = set(np.argsort(-(vectors @ q), kind="stable")[:k].tolist())
        out.skew.append(SkewRow(query, {n: len(top & set(m.tolist())) / k for n, m in members.items()}))
    logger.info("bias check %s on %s@%s: d=%.3f p=%.4f", check.name, check.view, version, result.effect_size, result.p_value)
    return out


def run_checks(store: Any, view: Optional[str] = None, model_version: Optional[str] = None,
               config: Optional[BiasConfig] = None) -> list[CheckResult]:
    """Every check of the repo (or of one view), on the served version or ``model_version``."""
    config = config or load_bias_config(Path(store.repo_path))
    checks = config.for_view(view) if view else list(config.checks)
    if not checks:
        where = f" for view '{view}'" if view else ""
        raise InvalidArgument(f"no bias checks{where} in {Path(store.repo_path) / 'bias' / 'checks.yaml'}")
    return [run_check(store, c, config, model_version) for c in checks]


@dataclass
class Promotion:
    switch: SwitchResult
    checks: list[CheckResult]


def serve(store: Any, view: str, model_version: str, override_reason: Optional[str] = None) -> Promotion:
    """Serve ``model_version`` of ``view`` behind the release gate: its bias checks run on that
    version first; one over ``max_effect_size`` refuses the switch unless ``override_reason``
    says why it may be served anyway. Each check's outcome is recorded (a refusal at once; a pass
    or an override once the switch is done). A view with no checks is served as asked.

    A check that cannot run (an empty group, weights that are gone) stops the promotion with its
    reason: a broken check is fixed in ``bias/checks.yaml``, not overridden."""
    config = load_bias_config(Path(store.repo_path))
    version_rows(store, view, model_version)  # a version the view lacks: say that first
    results = [run_check(store, c, config, model_version) for c in config.for_view(view)]
    over = [r for r in results if r.over(config.max_effect_size)]
    reason = (override_reason or "").strip() or None
    db = LineageDB.for_repo(Path(store.repo_path))

    def record(outcome_over: str, why: Optional[str]) -> None:
        for r in results:
            outcome = outcome_over if r in over else "passed"
            db.record_release_gate(view, model_version, r.check.name, r.weat.effect_size, r.weat.p_value,
                                   config.max_effect_size, outcome, why if r in over else None)

    if over and not reason:
        record("refused", None)
        detail = "; ".join(f"{r.check.name}: effect size {r.weat.effect_size:+.2f} (p={r.weat.p_value:.4f})" for r in over)
        raise ReleaseRefused(
            f"refused: model version {model_version} of view '{view}' goes over the bias limit |d| <= {config.max_effect_size}"
            f" (bias/checks.yaml): {detail}. Serve it anyway with --override-reason \"why\" (recorded)")
    result = switch(store, view, model_version)
    record("overridden", reason)
    return Promotion(result, results)
