"""benchmarks/gpu.sh, the one prepared GPU run, checked on CPU with its small sizes.

GPU time is lent rarely and briefly (one 15-minute try per task), so a script that breaks only
when it finally runs there wastes the loan. CI has no GPU: this runs the script's own CPU check
path and reads back every report it must write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "gpu.sh"

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="a CUDA GPU is here: run benchmarks/gpu.sh itself (full sizes, ~5 min)"
)


def run_script(out: Path, allow_cpu: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPU_BENCH_ALLOW_CPU": "1" if allow_cpu else "0"}
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=420)


def test_without_a_gpu_the_script_refuses_unless_asked_for_a_cpu_check(tmp_path: Path):
    done = run_script(tmp_path / "out", allow_cpu=False)

    assert done.returncode == 1
    assert "no CUDA device (set GPU_BENCH_ALLOW_CPU=1" in done.stderr
    assert not (tmp_path / "out" / "minilm.txt").exists()


def test_the_cpu_check_writes_every_report_the_gpu_run_writes(tmp_path: Path):
    out = tmp_path / "out"
    done = run_script(out, allow_cpu=True)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "CPU check run" in (out / "gpu.txt").read_text()
    clip = (out / "clip_vit_b32_batch8.txt").read_text()
    assert "CLIP ViT-B/32 (random weights), 16 JPEGs 640x480, batch 8" in clip
    for path in ("model only", "encode (processor + model)", "pipeline, prefetch", "pipeline, no prefetch"):
        line = next(line for line in clip.splitlines() if line.startswith(path))
        assert float(line[len(path):].split()[0]) > 0, line  # images/s measured
    minilm = (out / "minilm.txt").read_text()
    assert "MiniLM-L6, 128 sentences, batch 32" in minilm
    line = next(line for line in minilm.splitlines() if line.startswith("encode (tokenizer + model + pool)"))
    assert float(line.split()[-2]) > 0, line  # sentences/s measured
    assert f"results in {out}" in done.stdout
