"""The stock `feast ui` in a real browser (Debian's headless Chromium) against the demo repo.

`feast ui` serves the registry from the demo's SQL registry; the test renders its pages and
checks that the multi-modal sources, the embedding and fused views and the lineage graph
(data source -> view -> feature service edges) are there, and saves a screenshot.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mm_feast.cli.demo import feast_cli
from mm_feast.plugin.milvus.store import close_connections
from test_lineage import make_repo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UI_START_TIMEOUT_S = 180
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000",
]
EMBEDDING_VIEWS = [
    "image_embeddings", "video_frame_embeddings", "video_embeddings", "audio_window_embeddings",
    "audio_embeddings", "text_block_embeddings", "text_block_minilm", "report_context",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium is not installed (scripts/setup.sh installs it with apt-get when run as root)",
    ),
]


@dataclass
class Ui:
    url: str
    project: str
    profile: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`feast ui` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"`feast ui` did not answer at {url} within {UI_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Ui:
    base = tmp_path_factory.mktemp("feast_ui")
    project = f"ui_{uuid.uuid4().hex[:8]}"
    repo = make_repo(base, project)
    feast_cli(repo, "apply")  # the registry is all the UI reads: no materialization needed
    close_connections()
    port = _free_port()
    log = base / "feast_ui.log"
    feast = Path(sys.executable).with_name("feast")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(feast), "ui", "--host", "127.0.0.1", "--port", str(port)],
            cwd=repo, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
        yield Ui(f"http://127.0.0.1:{port}", project, base / "chromium-profile")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children only
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _chromium(ui: Ui, path: str, *action: str) -> str:
    """Run headless Chromium on one page; virtual time lets the React app fetch and render."""
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={ui.profile}", "--virtual-time-budget=20000", *action, f"{ui.url}/p/{ui.project}/{path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"chromium failed on {path}: {result.stderr[-2000:]}"
    return result.stdout


def render(ui: Ui, path: str, expect: str) -> tuple[str, str]:
    """(DOM, visible text) of a page once ``expect`` shows up (the app loads asynchronously)."""
    for _ in range(3):
        dom = _chromium(ui, path, "--dump-dom")
        body = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
        text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))
        if expect in text:
            return dom, text
    pytest.fail(f"'{expect}' never appeared on {path}; page text: {text[:2000]}")


def test_data_sources_page_lists_the_media_and_embedding_sources(ui: Ui):
    _, text = render(ui, "data-source", "demo_media")
    for name in ["demo_media", *(f"{v}_source" for v in EMBEDDING_VIEWS)]:
        assert name in text, name


def test_fused_view_page_shows_its_parents_and_fused_source(ui: Ui):
    _, text = render(ui, "feature-view/report_context", "mm_feast.parent_views")
    assert "text_block_embeddings,image_embeddings" in text
    assert "FusedEmbeddingSource" in text and "parent_lineage_ids" in text and "lineage_id" in text
    assert "demo_media -> text_block_embeddings + image_embeddings -> report_context" in text


def test_lineage_graph_shows_sources_views_and_service_and_is_screenshotted(ui: Ui, tmp_path: Path):
    dom, text = render(ui, "lineage", "cross_modal_search")
    for name in ["demo_media", "media_items", "cross_modal_search", *EMBEDDING_VIEWS]:
        assert name in text, name
    edges = set(re.findall(r'aria-label="Edge from ([^"]+) to ([^"]+)"', dom))
    assert ("ds-demo_media", "fv-media_items") in edges
    for view in EMBEDDING_VIEWS:
        assert (f"ds-{view}_source", f"fv-{view}") in edges, view
        assert (f"fv-{view}", "fs-cross_modal_search") in edges, view
    shot = tmp_path / "feast_ui_lineage.png"
    _chromium(ui, "lineage", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
