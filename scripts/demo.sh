#!/usr/bin/env bash
# End-to-end demo on the built-in synthetic dataset. Outputs go to demo/ (or $1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
OUT="${1:-demo}"
STEPS="${DEMO_STEPS:-240}"
rm -rf "$OUT/noisy" "$OUT/runs" "$OUT/saved_models" "$OUT/separated" "$OUT/curation_report.html" "$OUT/run_report.html"
mkdir -p "$OUT"
curate synth "$OUT/data" --tracks 12 --test-tracks 2 --seconds 10 --seed 0
curate corrupt "$OUT/data" "$OUT/noisy" --mislabel-rate 0.2 --bleed-rate 0.2 --seed 0
curate scan "$OUT/noisy" -o "$OUT/manifest.parquet" --txt-dir "$OUT/lists" --jobs 2
curate filter "$OUT/manifest.parquet" --threshold 0.7 -o "$OUT/clean.parquet" --rejected "$OUT/rejected.parquet"
pipelines train --manifest "$OUT/clean.parquet" --target vocals --model tiny --max-steps "$STEPS" --batch-size 4 \
  --weighting quality --truncate --truncate-warmup 60 --set val_every=60 --valid-fraction 0.1 \
  --out "$OUT/runs/vocals" --export-dir "$OUT/saved_models"
pipelines evaluate "$OUT/runs/vocals"
pipelines separate -i "$OUT/data/test/synth000-012/mixture.wav" -o "$OUT/separated" -c "$OUT/saved_models/vocals/vocals.ckpt" --residual
curate report "$OUT/manifest.parquet" -o "$OUT/curation_report.html"
pipelines report "$OUT/runs/vocals" -o "$OUT/run_report.html"
echo
echo "demo outputs:"
echo "  clean dataset     $OUT/data  (MUSDB18-HQ layout)"
echo "  noisy copy        $OUT/noisy  (ground truth: $OUT/noisy/corruptions.parquet)"
echo "  scored manifest   $OUT/manifest.parquet  (problems: $OUT/manifest.problems.parquet)"
echo "  kept fragments    $OUT/clean.parquet"
echo "  rejected          $OUT/rejected.parquet  (with reasons)"
echo "  fragment lists    $OUT/lists/{vocals,bass,drums,other}_train.txt"
echo "  training run      $OUT/runs/vocals  (config.yaml, checkpoints/, logs/metrics.csv)"
echo "  trained model     $OUT/saved_models/vocals/vocals.ckpt"
echo "  evaluation        $OUT/runs/vocals/results.parquet, $OUT/runs/vocals/test.log"
echo "  separated stems   $OUT/separated/synth000-012/{vocals,no_vocals}.wav"
echo "  curation report   $OUT/curation_report.html"
echo "  run report        $OUT/run_report.html"
