#!/usr/bin/env bash
# End-to-end demo on the built-in synthetic dataset. Outputs go to demo/ (or $1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
OUT="${1:-demo}"
mkdir -p "$OUT"
curate synth "$OUT/data" --tracks 12 --test-tracks 2 --seconds 10 --seed 0
curate scan "$OUT/data" -o "$OUT/manifest.parquet" --txt-dir "$OUT/lists"
echo
echo "demo outputs:"
echo "  dataset         $OUT/data  (MUSDB18-HQ layout)"
echo "  manifest        $OUT/manifest.parquet"
echo "  problems        $OUT/manifest.problems.parquet"
echo "  fragment lists  $OUT/lists/{vocals,bass,drums,other}_train.txt"
