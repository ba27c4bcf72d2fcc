#!/usr/bin/env bash
# Quickstart 2: set up (idempotent), then run the default test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec "$VFMBENCH_PYTHON" -m pytest "$@"
