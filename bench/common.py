"""Helpers shared by the benchmarks: timing, the closing JSON line, ``--save``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO.parent / "shared" / "tools" / "render_multitracks.py"


def render(out: Path, *, train: int, test: int = 0, seconds: float = 20.0, seed: int = 0) -> None:
    """A MUSDB18-HQ-style dataset rendered from MIDI with ``../shared/tools/render_multitracks.py``."""
    if not RENDER.exists():
        raise SystemExit(f"{RENDER} not found")
    cmd = [sys.executable, str(RENDER), str(out), "--num-train", str(train), "--num-test", str(test), "--seconds", str(seconds), "--seed", str(seed)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"render failed (needs fluidsynth fluid-soundfont-gm freedoom and mido):\n{res.stderr[-2000:]}")


def best_time(fn, repeat: int = 5) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def commit() -> str:
    """The current commit hash, with ``-dirty`` when the work tree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout
        # documentation (earlier --save output, docs/, the README) does not change what is measured
        dirty = [line for line in status.splitlines() if not line[3:].startswith(("docs/", "README.md"))]
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def finish(name: str, figures: dict, save: bool) -> None:
    """Print ``figures`` as the last line (one JSON object); with ``save`` also write docs/benchmarks/NAME.json."""
    if save:
        out = REPO / "docs" / "benchmarks" / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**figures, "commit": commit()}, indent=1) + "\n")
    print(json.dumps(figures))
