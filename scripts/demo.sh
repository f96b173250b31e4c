#!/usr/bin/env bash
# End-to-end demo on the built-in synthetic dataset. Outputs go to demo/ (or $1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
OUT="${1:-demo}"
rm -rf "$OUT/noisy"
mkdir -p "$OUT"
curate synth "$OUT/data" --tracks 12 --test-tracks 2 --seconds 10 --seed 0
curate corrupt "$OUT/data" "$OUT/noisy" --mislabel-rate 0.2 --bleed-rate 0.2 --seed 0
curate scan "$OUT/noisy" -o "$OUT/manifest.parquet" --txt-dir "$OUT/lists" --jobs 2
curate filter "$OUT/manifest.parquet" --threshold 0.7 -o "$OUT/clean.parquet" --rejected "$OUT/rejected.parquet"
echo
echo "demo outputs:"
echo "  clean dataset     $OUT/data  (MUSDB18-HQ layout)"
echo "  noisy copy        $OUT/noisy  (ground truth: $OUT/noisy/corruptions.parquet)"
echo "  scored manifest   $OUT/manifest.parquet  (problems: $OUT/manifest.problems.parquet)"
echo "  kept fragments    $OUT/clean.parquet"
echo "  rejected          $OUT/rejected.parquet  (with reasons)"
echo "  fragment lists    $OUT/lists/{vocals,bass,drums,other}_train.txt"
