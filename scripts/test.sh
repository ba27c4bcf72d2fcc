#!/usr/bin/env bash
# Quickstart 2: set up (idempotent), then run the default test suite. Extra arguments go to pytest.
# Tests run in VFMBENCH_TEST_WORKERS processes (pytest-xdist; default 2, one per core here; 0: in this process).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec "$VFMBENCH_PYTHON" -m pytest -n "${VFMBENCH_TEST_WORKERS:-2}" "$@"
