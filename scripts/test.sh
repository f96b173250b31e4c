#!/usr/bin/env bash
# Run the test suite in .venv (created on first use). Extra arguments go to pytest.
set -euo pipefail
SETUP_FOR_TESTS=1
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/python -m pytest -q "$@"
