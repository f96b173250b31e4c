"""Rebuild ``curate/assets/reference_synth.npz``: the default reference pool's embeddings, shipped so that
a scan does not render and embed the pool each time (see :mod:`curate.reference`).

    python scripts/build_reference_pool.py     # about a minute on 2 cores

Renders :data:`curate.reference.SYNTH_POOL` with ``curate synth`` once and stores the ``features`` and
``musicnn`` embeddings of the same units (float16). Rerun it whenever an embedder or ``curate synth``
changes; ``tests/curate/test_reference.py`` fails while the shipped file is stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.reference import POOL_FILE, SYNTH_POOL, embed_dataset, save_pool  # noqa: E402
from curate.simulate.synth import synth_dataset  # noqa: E402

PARTS = ("features", "musicnn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=POOL_FILE, help=f"file to write (default: {POOL_FILE})")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemcurate-pool-") as tmp:
        synth_dataset(tmp, tracks=SYNTH_POOL.tracks, seconds=SYNTH_POOL.seconds, seed=SYNTH_POOL.seed)
        parts = {name: embed_dataset(tmp, name, prefix="synth:") for name in PARTS}
    path = save_pool(parts, args.out)
    n = len(next(iter(parts.values())))
    print(
        f"{path}: {n} units, {', '.join(f'{k} {v.emb.shape[1]}-d' for k, v in parts.items())}, "
        f"{path.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
