#!/usr/bin/env bash
# Quickstart 1: set up (idempotent), then run the default demo. Extra arguments go to `vfmbench demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$VFMBENCH_PYTHON" -m vfmbench demo "$@"
