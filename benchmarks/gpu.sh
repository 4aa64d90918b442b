#!/usr/bin/env bash
# The GPU benchmark, one prepared script: about 5 minutes on one H200, 8 at most (each step has
# its own deadline). Reports, into $OUT (or benchmarks/results/gpu-<time>/):
#   - CLIP ViT-B/32 architecture (random weights: speed only) images/s, model only and end to end
#     from 640x480 JPEGs, and pipeline efficiency (pipeline ÷ model only, same batch), at two
#     batch sizes;
#   - MiniLM-L6 sentences/s, model only and through the encoder.
# Needs a Python with CUDA torch and mm-feast installed (PYTHON, default python). Runs on CPU too
# (GPU_BENCH_ALLOW_CPU=1) with small sizes, to check the script itself: tests/test_gpu_script.py does, in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
out=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  images=4096; sentences=65536; batches="64 256"; text_batch=512
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || true
elif [[ ${GPU_BENCH_ALLOW_CPU:-0} == 1 ]]; then
  images=16; sentences=128; batches="8"; text_batch=32
  echo "no CUDA device: CPU check run with small sizes" | tee "$out/gpu.txt"
else
  echo "no CUDA device (set GPU_BENCH_ALLOW_CPU=1 to check the script on CPU)" >&2
  exit 1
fi
export TRANSFORMERS_VERBOSITY=error
for bs in $batches; do
  timeout 180 "$py" -m benchmarks.bench_pipeline --images "$images" --batch-size "$bs" --repeats 2 \
    | tee "$out/clip_vit_b32_batch$bs.txt"
done
timeout 120 "$py" -m benchmarks.bench_text_encoder --sentences "$sentences" --batch-size "$text_batch" --repeats 3 \
  | tee "$out/minilm.txt"
echo "results in $out"
