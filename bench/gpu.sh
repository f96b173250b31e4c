#!/usr/bin/env bash
# The device checks of a session that is lent a GPU, as one script (about 10 minutes on one GPU):
# the CUDA tests, the band layers and whole model against the per-band loop on the GPU (forward+backward),
# separation real-time factors there, training throughput of every model size, and the learning curve on
# the real songs (paper size, 3 minutes, beside open-unmix's trainer when its wheel is installed:
# pip install --no-deps openunmix==1.3.0), and the noisy vs curated vs clean benchmark on the real songs
# (medium size, one seed, configurations a, b, e; at most 4 minutes). Run from the repo root with .venv set up.
set -euo pipefail
source .venv/bin/activate
python -m pytest -q tests/test_cuda.py
python bench/bsrnn.py --device cuda --quick --save
python bench/train.py --accelerator gpu --quick --save
umx=()
python -c "import sys, types; sys.modules['torchaudio'] = types.ModuleType('torchaudio'); import openunmix" 2>/dev/null \
    || umx=(--no-openunmix)
python bench/learning.py --accelerator gpu --model paper --budgets 3 --threads 8 --set num_workers=6 "${umx[@]}" --save --save-as learning_gpu
timeout 240 python bench/e2e.py --data real --model medium --targets vocals --configs a,b,e --seeds 0 --jobs 1 \
    --accelerator gpu --device cuda --save --save-as e2e_real_gpu
