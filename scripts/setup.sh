#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: system packages, then .venv at the repo root.
# Idempotent: reinstalls the Python packages only when pyproject.toml changed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
# the report tests open the HTML reports in headless Chromium
if [ "${SETUP_FOR_TESTS:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            PY="$cand"; break
        fi
    done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY" >&2
    "$PY" -m venv .venv
fi
STAMP=.venv/.stemcurate-installed
WANT="$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "setup: installing stemcurate and its dependencies into .venv (about 1-2 minutes)" >&2
    # torch is pinned here (pyproject.toml takes a range, for users with their own CUDA build); pip takes the
    # CPU wheel that lies on disk where there is one.
    { .venv/bin/python -m pip install --quiet "torch==2.13.0" -e ".[test]" 2>&1; } \
        | { grep -v -e "is ignored: it is neither a file nor a directory" -e "^ *$" || true; } >&2
    echo "$WANT" > "$STAMP"
fi
export PATH="$REPO/.venv/bin:$PATH"
