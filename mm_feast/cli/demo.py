"""The end-to-end demo: generate media, `feast apply`, `feast materialize`, then search and serve.

It drives Feast through its real CLI (subprocesses), exactly as a user would, and then uses the
SDK for serving, so the demo doubles as the smoke test of the whole spine.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

MEDIA_DIR = Path("data/media")
GROUND_TRUTH = "ground_truth.json"


@dataclass
class DemoCorpus:
    manifest: Path
    ground_truth: dict[str, dict]
    broken: list[str]


def write_demo_media(repo: Path, seed: int = 0) -> DemoCorpus:
    """Write the synthetic corpus and its manifest under ``repo/data/media``.

    Timestamps are set just before now so `feast materialize-incremental` (which looks back one
    year when a view has no TTL) picks every item up. Two deliberately broken files show the
    quarantine path: a truncated JPEG and a text file that is not UTF-8.
    """
    from mm_feast.synthetic import write_demo_corpus

    media = (Path(repo) / MEDIA_DIR).resolve()
    if media.exists():
        shutil.rmtree(media)
    rows = write_demo_corpus(media, seed=seed)
    broken_dir = media / "broken"
    broken_dir.mkdir(parents=True)
    good_jpeg = next(Path(r["uri"]) for r in rows if r["uri"].endswith(".jpg"))
    (broken_dir / "truncated.jpg").write_bytes(good_jpeg.read_bytes()[:200])
    (broken_dir / "latin1.txt").write_bytes("caf\xe9 cr\xe8me, a red circle".encode("latin-1"))
    rows += [
        {"item_id": "img_truncated", "uri": str(broken_dir / "truncated.jpg"), "modality": "image", "caption": ""},
        {"item_id": "txt_latin1", "uri": str(broken_dir / "latin1.txt"), "modality": "text", "caption": ""},
    ]
    reports = assign_reports(rows)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    manifest = media / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "uri", "modality", "caption", "report", "event_timestamp"])
        writer.writeheader()
        for index, row in enumerate(rows):
            writer.writerow(
                {
                    "item_id": row["item_id"],
                    "uri": Path(row["uri"]).relative_to(media).as_posix(),
                    "modality": row["modality"],
                    "caption": row.get("caption", ""),
                    "report": reports.get(row["item_id"], ""),
                    "event_timestamp": (start + timedelta(seconds=index)).isoformat(),
                }
            )
    truth = {r["item_id"]: {"caption": r.get("caption", ""), "modality": r["modality"], "events": r.get("events", [])} for r in rows}
    (media / GROUND_TRUTH).write_text(json.dumps(truth, indent=1))
    return DemoCorpus(manifest, truth, ["img_truncated", "txt_latin1"])


def assign_reports(rows: list[dict]) -> dict[str, str]:
    """item_id -> report id: each text document is a report, and the image it describes first
    (earliest caption mention) is the image in that report. Feeds the fused `report_context` view."""
    images = [r for r in rows if r["modality"] == "image" and r.get("caption")]
    reports: dict[str, str] = {}
    for doc in (r for r in rows if r["modality"] == "text"):
        try:
            text = Path(doc["uri"]).read_text(encoding="utf-8").lower()
        except (OSError, UnicodeDecodeError):
            continue  # broken documents are nobody's report
        mentions = [(text.find(img["caption"].lower().removeprefix("a ").removeprefix("an ")), i) for i, img in enumerate(images)]
        found = [m for m in mentions if m[0] >= 0 and images[m[1]]["item_id"] not in reports]
        reports[doc["item_id"]] = doc["item_id"]
        if found:
            reports[images[min(found)[1]]["item_id"]] = doc["item_id"]
    return reports


def reset_repo_data(repo: Path) -> None:
    """Delete data/ and a SQLite registry kept inside the repo: its lineage describes that data."""
    from sqlalchemy.engine import make_url

    from mm_feast.stores.lineage import dispose_engines, lineage_target

    if (repo / "data").exists():
        shutil.rmtree(repo / "data")
    url = make_url(lineage_target(repo).url)
    if url.drivername.startswith("sqlite") and url.database and Path(url.database).resolve().is_relative_to(repo.resolve()):
        dispose_engines()
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)


FEAST_CLI_TIMEOUT_S = 1800.0  # a deadline, not an estimate: the demo's materialize takes about a minute


def feast_cli(repo: Path, *args: str, timeout_s: float = FEAST_CLI_TIMEOUT_S) -> str:
    """Run the real `feast` CLI in ``repo``; its output streams to the user and is returned."""
    feast = Path(sys.executable).with_name("feast")
    command = [str(feast) if feast.exists() else "feast", *args]
    logger.info("$ %s  (in %s)", " ".join(command), repo)
    try:
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(command)}` did not finish within {timeout_s:.0f} s:\n{exc.stdout}\n{exc.stderr}") from None
    sys.stderr.write(result.stderr[-4000:])
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed with exit {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def apply_and_materialize(repo: Path) -> None:
    feast_cli(repo, "apply")
    end = (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(repo, "materialize-incremental", end)


# (query, modalities searched, views): scores compare only within one model space. Shape words
# are CLIP's (images, frames, text, and the sounds bound into CLIP's space); sound words are
# CLAP's, whose own space keeps the sound vocabulary (audio_window_embeddings).
DEMO_QUERIES = [
    ("a red circle", ["image", "video"], None),
    ("a blue square", ["video"], None),
    ("a green triangle", ["text"], None),
    ("a rising chirp", ["audio"], ["audio_window_embeddings"]),
    ("a low tone", ["audio"], ["audio_window_embeddings"]),
]


def run_demo(repo: Path, reset: bool = True, out=sys.stdout) -> None:
    """Generate, apply, materialize, then show searches, a get_online_features call, a fused
    feature and the lineage tree of a served vector."""
    from mm_feast.stores.lineage import open_store
    from mm_feast.services.lineage import lineage, print_lineage
    from mm_feast.cli.report import print_hits, print_summaries
    from mm_feast.services.search import CrossModalSearch, Query

    repo = Path(repo).resolve()
    if reset:
        reset_repo_data(repo)
    corpus = write_demo_media(repo)
    out.write(f"Demo media written under {corpus.manifest.parent} ({len(corpus.ground_truth)} items)\n")
    started = datetime.now(timezone.utc).isoformat()
    apply_and_materialize(repo)
    print_summaries(repo, out, since=started)

    store = open_store(repo)
    search = CrossModalSearch(store)
    for text, modalities, views in DEMO_QUERIES:
        hits = search.search(text, top_k=5, modalities=None if views else modalities, views=views)
        print_hits(f'text query "{text}" over {"/".join(modalities)}', hits, out)
    show_shared_space(repo, search, out)
    image = repo / MEDIA_DIR / "images" / "green_triangle_photo.jpg"
    print_hits(f"image query {image.name} -> text blocks", search.search(Query("image", str(image)), views=["text_block_embeddings"], top_k=3), out)
    online = store.get_online_features(
        features=["video_frame_embeddings:uri", "video_frame_embeddings:start_s", "video_frame_embeddings:model_version", "video_frame_embeddings:embedding", "video_frame_embeddings:lineage_id"],
        entity_rows=[{"segment_id": "vid_0#t=1.000"}],
    ).to_dict()
    vector = online["embedding"][0]
    out.write(
        "\nget_online_features(video_frame_embeddings, segment_id='vid_0#t=1.000'):\n"
        f"  uri={online['uri'][0]}\n  start_s={online['start_s'][0]}  model_version={online['model_version'][0]}\n"
        f"  embedding: {len(vector) if vector else 0}-d, first values {[round(v, 3) for v in (vector or [])[:4]]}\n"
        f"  lineage_id={online['lineage_id'][0]}\n"
    )
    fused = search.search("a blue cross", views=["report_context"], top_k=3)
    print_hits('fused view report_context (report text block + the image in that report): "a blue cross"', fused, out)
    if fused:
        out.write(f"\nmm-feast lineage {fused[0].lineage_id}  (the top fused hit, back to raw files):\n")
        print_lineage(lineage(repo, fused[0].lineage_id), out)
    show_live_feed(search, out)
    show_claims(repo, out)


def show_shared_space(repo: Path, search, out=sys.stdout) -> None:
    """One space for all four modalities: a sound finds the frames where it plays (with each
    frame's generated caption beside it), and a picture finds the sounds that go with it."""
    import numpy as np

    from mm_feast.cli.report import print_hits
    from mm_feast.services.search import Query
    from mm_feast.synthetic import AUDIO_SAMPLE_RATE, SOUND_CAPTIONS, SOUND_FOR_COLOR, render_sound, write_wav

    sound = SOUND_FOR_COLOR["red"]
    clip = Path(repo) / "data" / "queries" / "clip.wav"
    clip.parent.mkdir(parents=True, exist_ok=True)
    write_wav(clip, render_sound(sound, 1.0, AUDIO_SAMPLE_RATE, rng=np.random.default_rng(11)), AUDIO_SAMPLE_RATE)
    hits = search.search(Query("audio", str(clip)), views=["video_frame_embeddings"], top_k=5,
                         features=["video_frame_captions:text"])
    print_hits(f"sound query {clip.name} ({SOUND_CAPTIONS[sound]}, the sound of red things) -> video frames,"
               " with each frame's generated caption", hits, out)
    image = Path(repo) / MEDIA_DIR / "images" / "blue_square.png"
    hits = search.search(Query("image", str(image)), views=["video_soundtrack_embeddings", "audio_window_clip"], top_k=5)
    print_hits(f"image query {image.name} -> sounds (soundtracks and audio files; blue goes with"
               f" {SOUND_CAPTIONS[SOUND_FOR_COLOR['blue']]})", hits, out)


#: (name, damage, inconsistent text, stressed call or None for no call, as a video)
DEMO_CLAIMS = [
    ("claim_video_stressed", True, True, True, True),
    ("claim_photo_consistent", False, False, False, False),
    ("claim_photo_no_call", True, True, None, False),
]


def show_live_feed(search, out=sys.stdout, seconds: int = 3) -> None:
    """Three seconds of a synthetic live feed (frames + sound), each labelled from the store."""
    import numpy as np

    from mm_feast.services.live_feed import LiveFeedClassifier
    from mm_feast.synthetic import AUDIO_SAMPLE_RATE, feed_second

    classifier = LiveFeedClassifier(search)
    classifier.warm()
    rng = np.random.default_rng(5)
    out.write("\nLive feed, one second at a time (frames -> image_embeddings, audio -> audio_window_embeddings, top-5 vote):\n")
    for second in range(seconds):
        frames, audio, visual, sound = feed_second(rng)
        label = classifier.classify(frames, audio, AUDIO_SAMPLE_RATE)
        out.write(
            f"  t={second}s  sees {label.visual!r} ({label.visual_votes}/5; truth {visual!r}),"
            f" hears {label.acoustic!r} ({label.acoustic_votes}/5; truth {sound!r}), {label.elapsed_ms:.0f} ms\n"
        )


def show_claims(repo: Path, out=sys.stdout) -> None:
    """The demo decision model on three synthetic insurance claims, each explained across modalities."""
    from mm_feast.services.claims import embed_claim, explain
    from mm_feast.synthetic_claims import write_claim

    out.write("\nInsurance claims: the demo decision model, explained across modalities (mm-feast explain):\n")
    for i, (name, damage, inconsistent, stressed, video) in enumerate(DEMO_CLAIMS):
        claim = write_claim(Path(repo) / "data" / "claims", name, damage, inconsistent, stressed, video=video, seed=7)
        explanation = explain(embed_claim(claim.picture, claim.text, claim.call))
        truth = "reject" if claim.rejected else "approve"
        out.write(f"  {name} (rule says {truth}): {explanation.line()}\n")
