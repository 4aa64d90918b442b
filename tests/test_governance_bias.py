"""Bias in the joint space on a real repo (real feast CLI, Milvus Lite, the demo's trained CLIP): a
planted association is found with p < 0.01, a control is not (p > 0.05), `mm-feast bias` writes
its HTML and PNG report, and `mm-feast versions serve` refuses a version over the repo's limit
unless an override reason is given, which is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from mm_feast.cli.demo import write_demo_media
from mm_feast.governance.bias_checks import load_bias_config, parse_bias_config
from mm_feast.plugin.milvus.store import close_connections
from mm_feast.stores.lineage import LineageDB, open_store

from feast_repo import feast, write_feature_store_yaml

pytestmark = pytest.mark.slow
CLI = Path(sys.executable).with_name("mm-feast")
REPO_ROOT = Path(__file__).resolve().parents[1]

RED = ["red", "a red shape", "something red", "a red thing", "red paint", "the colour red"]
BLUE = ["blue", "a blue shape", "something blue", "a blue thing", "blue paint", "the colour blue"]
COLOUR_GROUPS = {"red": {"column": "caption", "contains": "red"}, "blue": {"column": "caption", "contains": "blue"}}


def cli(*args: str) -> subprocess.CompletedProcess:
    close_connections()
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600)


def check(name: str, concepts: dict, groups: dict = COLOUR_GROUPS, **extra) -> dict:
    return {"name": name, "view": "image_embeddings", "concepts": concepts, "groups": groups, **extra}


def write_checks(repo: Path, checks: list[dict], **settings) -> None:
    (repo / "bias").mkdir(exist_ok=True)
    (repo / "bias" / "checks.yaml").write_text(yaml.safe_dump({"permutations": 5000, **settings, "checks": checks}))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("bias") / "repo"
    (repo / "data").mkdir(parents=True)
    write_demo_media(repo)
    (repo / "definitions.py").write_text(textwrap.dedent("""\
        from mm_feast.sources import MediaSource
        from mm_feast.views import segment_embedding_view

        media = MediaSource(name="media", manifest="data/media/manifest.csv")
        image_embeddings = segment_embedding_view("image_embeddings", media, "image", "mm-feast/clip-shapes")
        """))
    write_feature_store_yaml(repo, "bias")
    feast(repo, "apply")
    feast(repo, "materialize-incremental", "2100-01-01T00:00:00")
    return repo


def results(repo: Path, checks: list[dict], **settings):
    from mm_feast.services.bias import run_checks

    config = parse_bias_config({"permutations": 5000, **settings, "checks": checks}, "test")
    try:
        return run_checks(open_store(repo), config=config)
    finally:
        close_connections()


def test_a_planted_association_is_found_and_a_control_is_not(repo: Path) -> None:
    """The demo's CLIP was trained on captions that tie colour words to colours: "red" phrases sit
    nearer the red pictures than "blue" phrases do. That is the planted association. The control
    splits one pool of colour-free phrases into two sets at random (seeded)."""
    pool = ["a shape", "a thing", "an object", "a picture", "an item", "a figure", "a drawing", "a form",
            "a sign", "an image", "a pattern", "a symbol"]
    order = np.random.default_rng(0).permutation(len(pool))
    control = {"x": [pool[i] for i in order[:6]], "y": [pool[i] for i in order[6:]]}
    planted, neutral = results(repo, [check("planted", {"red": RED, "blue": BLUE}), check("control", control)])
    assert planted.weat.p_value < 0.01 and planted.weat.effect_size > 1.0, planted.weat
    assert neutral.weat.p_value > 0.05, neutral.weat
    assert planted.group_sizes == {"red": 4, "blue": 4}  # four shapes of each colour in the demo corpus
    # s(w) of each phrase: every red phrase leans to the red pictures more than every blue phrase
    assert min(planted.association["red"]) > max(planted.association["blue"])


def test_groups_can_be_chosen_by_a_query_and_retrieval_skew_is_measured(repo: Path) -> None:
    by_query = {"red": {"query": "a red shape", "top": 4}, "blue": {"query": "a blue shape", "top": 4}}
    [result] = results(repo, [check("by_query", {"red": RED, "blue": BLUE}, by_query,
                                    neutral_queries=["a red circle", "a shape"])], top_k=4)
    assert result.weat.p_value < 0.01 and result.group_sizes == {"red": 4, "blue": 4}
    red_query, neutral = result.skew
    assert result.collection_share["red"] == pytest.approx(4 / result.items)
    # "a red circle" over-represents red pictures (its other hits are circles of other colours)
    assert red_query.top_share["red"] >= 2 * result.collection_share["red"] and red_query.top_share["blue"] == 0.0
    assert set(neutral.top_share) == {"red", "blue"}


def test_bad_checks_are_named_in_one_line(repo: Path) -> None:
    from mm_feast.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"checks\[0\].groups.red: give 'column' with exactly one of"):
        parse_bias_config({"checks": [check("bad", {"red": RED, "blue": BLUE}, {"red": {"column": "caption"}, "blue": {"query": "q"}})]}, "test")
    with pytest.raises(InvalidArgument, match="top_k: must be at least 1, got 0"):
        parse_bias_config({"top_k": 0, "checks": []}, "test")
    with pytest.raises(InvalidArgument, match="permutations: expected an integer, got 'many'"):
        parse_bias_config({"permutations": "many", "checks": []}, "test")
    with pytest.raises(InvalidArgument, match=r"name: use letters, digits"):
        parse_bias_config({"checks": [check("../escape", {"red": RED, "blue": BLUE})]}, "test")
    with pytest.raises(InvalidArgument, match="group 'red' reads manifest column 'colour'"):
        results(repo, [check("missing", {"red": RED, "blue": BLUE}, {"red": {"column": "colour", "equals": "red"},
                                                                     "blue": {"column": "caption", "contains": "blue"}})])


def test_the_bias_cli_prints_each_check_and_writes_an_html_report_with_a_png(repo: Path, tmp_path: Path) -> None:
    write_checks(repo, [check("planted", {"red": RED, "blue": BLUE}, neutral_queries=["a shape"])], max_effect_size=5.0)
    out = tmp_path / "report"
    shown = cli("bias", "--repo", str(repo), "--out", str(out))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "planted: view image_embeddings@" in shown.stdout and "skew 'a shape'" in shown.stdout
    page = (out / "report.html").read_text()
    assert "planted" in page and 'src="planted.png"' in page and "Effect size d = +" in page
    assert (out / "planted.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = json.loads(cli("bias", "--repo", str(repo), "--out", str(out), "--json").stdout)
    assert as_json[0]["p_value"] < 0.01 and as_json[0]["over_limit"] is False


def test_versions_serve_refuses_a_version_over_the_limit_unless_a_reason_is_recorded(repo: Path) -> None:
    write_checks(repo, [check("planted", {"red": RED, "blue": BLUE})], max_effect_size=0.8)
    assert load_bias_config(repo).max_effect_size == 0.8
    from mm_feast.services.versions import served_version

    try:
        version = served_version(open_store(repo), "image_embeddings")
    finally:
        close_connections()
    refused = cli("versions", "serve", "image_embeddings", version, "--repo", str(repo))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "refused: model version" in refused.stderr and "planted: effect size +" in refused.stderr
    assert "--override-reason" in refused.stderr
    over = cli("bias", "--repo", str(repo), "--out", str(repo / "data" / "bias"))
    assert over.returncode == 1 and over.stdout.startswith("OVER ")  # the bias CLI gates a pipeline too

    served = cli("versions", "serve", "image_embeddings", version, "--repo", str(repo),
                 "--override-reason", "colour words are meant to match colours here")
    assert served.returncode == 0, served.stdout + served.stderr
    gates = LineageDB.for_repo(repo).release_gates("image_embeddings")
    assert [(g["outcome"], g["override_reason"]) for g in gates] == [
        ("refused", None), ("overridden", "colour words are meant to match colours here")]
    assert all(g["model_version"] == version and g["effect_size"] > 0.8 and g["threshold"] == 0.8 for g in gates)

    write_checks(repo, [check("planted", {"red": RED, "blue": BLUE})], max_effect_size=5.0)
    passed = cli("versions", "serve", "image_embeddings", version, "--repo", str(repo))
    assert passed.returncode == 0 and "bias check planted: d=+" in passed.stdout
    assert LineageDB.for_repo(repo).release_gates("image_embeddings")[-1]["outcome"] == "passed"
