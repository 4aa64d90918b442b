"""User errors through the real `mm-feast` console script: one line on stderr,
``mm-feast: error: <message>``, the error's exit code, and no traceback unless ``--debug``.

Each case fails before any heavy work (no materialize, no model weights loaded); the registry for
the model case is written directly, without feast apply.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mm_feast.encoders.base import BUNDLED_MODELS_DIR, bundled_model_ids
from mm_feast.services.query import Query, looks_like_path

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("mm-feast")
ERROR = "mm-feast: error: "
HUB_ONLY_MODEL = "openai/clip-vit-base-patch32"  # not bundled, not cached: no hub is reachable here


def mm_feast(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def user_error(result: subprocess.CompletedProcess, exit_code: int = 2, traceback: bool = False) -> str:
    """The one error line, checked: the exit code, exactly one error line, last on stderr."""
    stderr = result.stderr
    assert result.returncode == exit_code, f"exit {result.returncode}:\n{result.stdout}\n{stderr[-3000:]}"
    assert ("Traceback" in stderr) is traceback, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(ERROR)]
    assert len(lines) == 1, stderr[-3000:]
    assert stderr.rstrip("\n").splitlines()[-1] == lines[0], "the error line is the last line"
    return lines[0][len(ERROR):]


def make_repo(parent: Path, with_data_dir: bool = True) -> Path:
    """The demo's feature_store.yaml (SQLite registry and Milvus Lite, both under data/)."""
    repo = parent / "repo"
    repo.mkdir()
    if with_data_dir:
        (repo / "data").mkdir()
    yaml = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    (repo / "feature_store.yaml").write_text(re.sub(r"project: \w+", f"project: errors_{uuid.uuid4().hex[:8]}", yaml))
    return repo


# ---- search queries that name a file --------------------------------------------------------


def test_a_missing_query_file_is_an_error_not_a_text_query(tmp_path: Path):
    # --repo is no Feast repo either: the query is checked first, before the store is opened
    message = user_error(mm_feast("search", "photos/cat.jpg", "--repo", str(tmp_path), cwd=tmp_path))
    assert message.startswith("query file photos/cat.jpg: no such file") and "--text" in message


def _truncated_jpeg(path: Path) -> None:
    from mm_feast.synthetic import render_shape
    from PIL import Image

    Image.fromarray(render_shape("red", "circle", 64)).save(path.with_suffix(".full.jpg"), quality=90)
    data = path.with_suffix(".full.jpg").read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("broken.jpg", _truncated_jpeg, "cannot decode image"),
        ("latin1.txt", lambda p: p.write_bytes("caf\xe9 au lait".encode("latin-1")), "not valid UTF-8"),
    ],
)
def test_an_undecodable_or_unreadable_query_file_names_the_file_and_the_reason(tmp_path: Path, name, make, reason):
    make(tmp_path / name)
    message = user_error(mm_feast("search", name, "--repo", str(tmp_path), cwd=tmp_path))
    assert message.startswith(f"query file {name}") and reason in message, message


def test_debug_shows_the_traceback_and_keeps_the_line_and_exit_code(tmp_path: Path):
    message = user_error(mm_feast("--debug", "search", "cat.jpg", "--repo", str(tmp_path), cwd=tmp_path), traceback=True)
    assert message.startswith("query file cat.jpg: no such file")


def test_text_forces_a_text_query_and_a_missing_data_dir_is_created(tmp_path: Path):
    repo = make_repo(tmp_path, with_data_dir=False)
    # a path-like text query; the repo has never been applied, and SQLite / Milvus Lite need data/
    message = user_error(mm_feast("search", "--text", "notes/cat.jpg", "--repo", str(repo), cwd=tmp_path))
    assert "has no embedding views" in message and "feast apply" in message, message
    assert (repo / "data").is_dir() and (repo / "data" / "registry.sqlite").is_file()


def test_a_directory_that_is_not_a_feast_repo_says_so(tmp_path: Path):
    message = user_error(mm_feast("ingest", "--repo", str(tmp_path), cwd=tmp_path))
    assert message == f"{tmp_path.resolve()} is not a Feast repo: it has no feature_store.yaml"


# ---- a model id that cannot be loaded ---------------------------------------------------------


@pytest.fixture(scope="module")
def unloadable_model_repo(tmp_path_factory) -> Path:
    """A registry whose embedding view names a model that is not here (as after `feast apply` on
    another machine), plus a view without model versions. Written straight to the registry."""
    from mm_feast.plugin import views
    from mm_feast.stores.lineage import open_store
    from mm_feast.sources import MediaSource

    repo = make_repo(tmp_path_factory.mktemp("unloadable_model"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(views, "model_dim", lambda model_id: 512)  # the config cannot be read here either
        media = MediaSource(name="catalog", manifest="data/catalog.csv")
        images = views.segment_embedding_view("image_embeddings", media, "image", HUB_ONLY_MODEL)
    store = open_store(repo)
    registry, project = store.registry, store.project
    registry.apply_entity(views.segment, project, commit=False)
    registry.apply_entity(views.item, project, commit=False)
    registry.apply_data_source(media, project, commit=False)
    registry.apply_data_source(images.batch_source, project, commit=False)
    registry.apply_feature_view(images, project, commit=False)
    registry.apply_feature_view(views.media_items_view("media_items", media), project, commit=True)
    return repo


def test_a_model_that_cannot_be_loaded_names_it_how_to_fix_and_the_bundled_ids(unloadable_model_repo: Path):
    message = user_error(mm_feast("search", "a red circle", "--repo", str(unloadable_model_repo), cwd=unloadable_model_repo))
    assert f"model '{HUB_ONLY_MODEL}' cannot be loaded" in message, message
    assert "save_pretrained" in message and "local_files_only" in message
    bundled = message.split("Bundled model ids: ")[1].split(", ")
    assert bundled == bundled_model_ids()
    assert {"mm-feast/clip-shapes", "mm-feast/clap-sounds", "sentence-transformers/all-MiniLM-L6-v2"} <= set(bundled)


def test_a_version_error_is_one_line_too(unloadable_model_repo: Path):
    message = user_error(mm_feast("versions", "list", "media_items", "--repo", str(unloadable_model_repo), cwd=unloadable_model_repo))
    assert message == "view 'media_items' is not an mm-feast embedding view: it has no model versions"


# ---- the same rules, in-process (fast) --------------------------------------------------------


def test_bundled_ids_are_the_model_directories_plus_minilm_and_all_resolve():
    from mm_feast.encoders import resolve_model_path

    dirs = sorted(p.name for p in BUNDLED_MODELS_DIR.iterdir() if p.is_dir())
    assert bundled_model_ids() == [f"mm-feast/{d}" for d in dirs] + ["sentence-transformers/all-MiniLM-L6-v2"]
    for model_id in bundled_model_ids():
        assert isinstance(resolve_model_path(model_id), Path), model_id


def test_a_missing_local_model_directory_says_no_such_directory(tmp_path: Path):
    from transformers import AutoConfig

    from mm_feast.core.errors import ModelNotFound, UserError
    from mm_feast.encoders import ModelLoadError
    from mm_feast.encoders.base import load_pretrained

    assert ModelLoadError is ModelNotFound and issubclass(ModelNotFound, UserError)
    with pytest.raises(ModelNotFound) as info:
        load_pretrained(AutoConfig, str(tmp_path / "my-clip"))
    assert f"there is no directory {tmp_path / 'my-clip'}" in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize(
    "value, path_like",
    [("a blue square", False), ("e.g. a red circle", False), ("version 2.0", False),
     ("photo.jpg", True), ("clip.WAV", True), ("notes.txt", True), ("dir/file", True), ("movie.mp4", True)],
)
def test_what_looks_like_a_path(value: str, path_like: bool):
    assert looks_like_path(value) is path_like


def test_query_parse(tmp_path: Path):
    from mm_feast.core.errors import QueryFileError

    doc = tmp_path / "doc.txt"
    doc.write_text("A red circle.", encoding="utf-8")
    assert Query.parse(str(doc)) == Query("text", str(doc), from_file=True)
    assert Query.parse(str(doc)).text() == "A red circle."
    assert Query.parse("a red circle") == Query("text", "a red circle")
    assert Query.parse("missing.jpg", text=True) == Query("text", "missing.jpg")
    for missing in ("missing.jpg", "clips/missing"):  # a media suffix, a path separator
        with pytest.raises(QueryFileError, match=f"query file {missing}: no such file"):
            Query.parse(missing)
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(QueryFileError, match="folder.wav: is a directory"):
        Query.parse(str(tmp_path / "folder.wav"))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(QueryFileError, match="empty.png: is empty"):
        Query.parse(str(tmp_path / "empty.png"))
    with pytest.raises(QueryFileError, match="no such file"):
        Query.parse("somefile", kind="image")  # a forced file kind needs the file


def test_the_version_and_suite_errors_are_user_errors():
    from mm_feast.core.errors import InvalidArgument, user_error_exit_code
    from mm_feast.quality.suites import SuiteError
    from mm_feast.services.versions import CrossVersionQueryError, VersionError

    for cls in (VersionError, CrossVersionQueryError, SuiteError):
        assert issubclass(cls, InvalidArgument) and issubclass(cls, ValueError)
        assert user_error_exit_code(cls("x")) == 2
    assert user_error_exit_code(RuntimeError("a bug")) is None


# ---- errors raised inside Feast's own CLI ------------------------------------------------------


def test_feast_apply_with_a_model_that_cannot_be_loaded_is_one_line_not_a_traceback(tmp_path: Path):
    """Feast imports the definitions without catching errors; mm-feast's hook prints the error."""
    repo = make_repo(tmp_path)
    (repo / "docs").mkdir()
    (repo / "docs" / "a.txt").write_text("hello\n")
    (repo / "definitions.py").write_text(
        "from mm_feast.sources import MediaSource\n"
        "from mm_feast.views import segment_embedding_view\n"
        f"v = segment_embedding_view('v', MediaSource(name='notes', root='docs'), 'text', '{HUB_ONLY_MODEL}')\n"
    )
    feast = [str(Path(sys.executable).with_name("feast")), "apply"]
    result = subprocess.run(feast, cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = next(x for x in result.stderr.splitlines() if x.startswith("feast: error: "))
    assert HUB_ONLY_MODEL in line and "Bundled model ids: " in line and "mm-feast/clip-shapes" in line
    assert "vector_enabled" not in result.stderr, "Feast's own config warning is not the user's to fix"

    debug = subprocess.run(feast, cwd=repo, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "MM_FEAST_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ModelNotFound" in debug.stderr
