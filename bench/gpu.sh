#!/usr/bin/env bash
# The device checks of a session that is lent a GPU, as one script (issue 23, item 6):
# the CUDA tests, the band layers and whole model against the per-band loop on the GPU (forward+backward),
# separation real-time factors there, and training throughput. Run from the repo root with .venv set up.
set -euo pipefail
source .venv/bin/activate
python -m pytest -q tests/test_cuda.py
python bench/bsrnn.py --device cuda --quick --save
python bench/train.py --accelerator gpu --quick --save
