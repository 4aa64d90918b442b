"""The demo's multi-modal feature definitions: one media collection, embedded four ways.

CLIP (trained here on coloured shapes) puts images, video frames and text in one space, and an
audio tower bound into it adds sounds (the videos' soundtracks and the audio files); CLAP
(trained on tones and chirps) keeps audio windows and text in a space of its own, as an option;
a captioner writes a caption per image and frame; all-MiniLM-L6-v2 gives a
384-d text-only space beside the 512-d ones. ``report_context`` fuses each report's text
blocks with the image in that report (manifest column ``report``): a multi-source feature whose
lineage lists both parents.
"""

from feast import FeatureService

from mm_feast.fusion import fused_embedding_view
from mm_feast.media import AudioWindowing, FrameSampling, SegmentationConfig
from mm_feast.sources import MediaSource
from mm_feast.views import (
    generated_text_view,
    item,
    item_embedding_view,
    media_items_view,
    segment,
    segment_embedding_view,
)

CLIP = "mm-feast/clip-shapes"
CLAP = "mm-feast/clap-sounds"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# clap-sounds' audio tower trained into CLIP's space (ImageBind-style, CLIP frozen): its audio
# vectors are searched beside images, frames and text, with no fusion across spaces
BOUND_AUDIO = "mm-feast/clap-bound-clip"
CAPTIONER = "mm-feast/caption-shapes"

demo_media = MediaSource(
    name="demo_media",
    manifest="data/media/manifest.csv",
    description="Synthetic demo corpus: shape images, shape videos, tone/chirp audio, text",
)

segmentation = SegmentationConfig(
    frame_sampling=FrameSampling(mode="every_n_seconds", value=0.5),
    audio_windowing=AudioWindowing(window_s=1.0, hop_s=0.5),
    max_chars=500,
)

media_items = media_items_view("media_items", demo_media)
image_embeddings = segment_embedding_view("image_embeddings", demo_media, "image", CLIP)
video_frame_embeddings = segment_embedding_view(
    "video_frame_embeddings", demo_media, "video", CLIP, segmentation
)
video_embeddings = item_embedding_view("video_embeddings", video_frame_embeddings)
audio_window_embeddings = segment_embedding_view(
    "audio_window_embeddings", demo_media, "audio", CLAP, segmentation
)
audio_embeddings = item_embedding_view("audio_embeddings", audio_window_embeddings)
# one shared space for all four modalities: the videos' soundtracks and the audio files, bound into CLIP
video_soundtrack_embeddings = segment_embedding_view(
    "video_soundtrack_embeddings", demo_media, "video", BOUND_AUDIO, segmentation, track="audio"
)
audio_window_clip = segment_embedding_view("audio_window_clip", demo_media, "audio", BOUND_AUDIO, segmentation)
# generated text as features: a caption per sampled frame and per image, in the text column
# (BM25) and embedded by CLIP's text tower, with lineage back to the frame
video_frame_captions = generated_text_view(
    "video_frame_captions", demo_media, "video", CAPTIONER, CLIP, segmentation
)
image_captions = generated_text_view("image_captions", demo_media, "image", CAPTIONER, CLIP)
text_block_embeddings = segment_embedding_view(
    "text_block_embeddings", demo_media, "text", CLIP, segmentation
)
text_block_minilm = segment_embedding_view(
    "text_block_minilm", demo_media, "text", MINILM, segmentation
)
# text block + the image in the same report (same CLIP space), one fused row per block
report_context = fused_embedding_view(
    "report_context", text_block_embeddings, [image_embeddings], group_by="report"
)

cross_modal_search = FeatureService(
    name="cross_modal_search",
    features=[
        image_embeddings,
        video_frame_embeddings,
        video_embeddings,
        audio_window_embeddings,
        audio_embeddings,
        text_block_embeddings,
        text_block_minilm,
        report_context,
        video_soundtrack_embeddings,
        audio_window_clip,
        video_frame_captions,
        image_captions,
    ],
    description="Every embedding view of the demo, for serving cross-modal search",
    tags={"mm_feast.lineage": "demo_media -> embedding views -> report_context -> cross_modal_search"},
)
