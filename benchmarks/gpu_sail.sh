#!/usr/bin/env bash
# The GPU path end to end on a bare GPU machine without network: the planner benchmark, then
# `embodied-sail preset=gpu_quick` (<= 8 minutes on one H200 with 16 cores).
#
#   bash benchmarks/gpu_sail.sh pack          # here, with the package registries: .whl/ and .gl/
#   bash benchmarks/gpu_sail.sh run OUT_DIR   # there (carry .whl and .gl): install, benchmark, SAIL
#
# `pack` fetches, for Python 3.12 on x86-64, the wheels such a machine lacks (the lent H200s have
# Python 3.12 with torch, transformers, accelerate, scipy, matplotlib, imageio and opencv, but no
# mujoco, metaworld, diffusers, hydra or zarr) at this project's pins, and the Debian EGL loader
# libraries MuJoCo renders through on an NVIDIA driver. About 60 MB together: the MiniLM package
# (84 MB) does not fit beside them in a 64 MiB transfer, so gpu_quick's planner learns its
# instruction embeddings (configs/video_model/gpu_quick.yaml).
#
# `run` writes into OUT_DIR: planner_speed.txt, sail.log, summary.md, sail.json, success.png,
# timing.json (wall seconds per phase); the run directory itself stays in runs/gpu_quick (rerunning resumes it).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# Versions as pinned in pyproject.toml (and, for packages it does not pin, as make install resolves them).
WHEELS=(mujoco==3.3.0 metaworld==3.1.1 gymnasium==1.2.2 farama-notifications==0.0.6 zarr==3.1.5
        numcodecs==0.16.3 donfig==0.8.1.post1 google-crc32c==1.9.0 hydra-core==1.3.2 omegaconf==2.3.0
        diffusers==0.35.2 PyOpenGL==3.1.10 glfw==2.11.0)
SOURCE_ONLY=(antlr4-python3-runtime==4.9.3)  # no wheel on PyPI: built here (pure Python)
EGL_DEBS=(libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

pack() {
  rm -rf .whl && mkdir -p .whl .gl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 \
    -d .whl "${WHEELS[@]}"
  "$PY" -m pip wheel -q --no-deps -w .whl "${SOURCE_ONLY[@]}"
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download -qq "${EGL_DEBS[@]}")
  du -sh .whl .gl
}

run() {
  local out=${1:?usage: gpu_sail.sh run OUT_DIR}
  mkdir -p "$out"
  for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
  ldconfig
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  "$PY" -c "import torch, mujoco, metaworld, diffusers, zarr, hydra; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

  # 1. Plan latency at 128 px (the gpu preset's 111 M planner) before / served, and plans per second.
  timeout 150 "$PY" benchmarks/planner_speed.py --preset gpu --device cuda --text-encoder learned \
    --steps 3 --plans 5 --plan-batches 16,64 2>&1 | tee "$out/planner_speed.txt" || echo "planner_speed failed" | tee -a "$out/planner_speed.txt"

  # 2. SAIL, gpu_quick: demos, pretraining, 2 iterations, the report. Resumes if run again.
  local start=$SECONDS status=0
  "$PY" -m embodied.cli.sail preset=gpu_quick hydra.run.dir=runs/gpu_quick 2>&1 | tee "$out/sail.log" || status=$?
  echo "gpu_quick wall time: $((SECONDS - start)) s, exit status $status" | tee -a "$out/sail.log"
  for f in summary.md sail.json success.png timing.json; do
    [ -f "runs/gpu_quick/report/$f" ] && cp "runs/gpu_quick/report/$f" "$out/"
  done
  return $status
}

case "${1:-}" in
  pack) pack ;;
  run) shift; run "$@" ;;
  *) sed -n 2,17p "$0"; exit 2 ;;
esac
