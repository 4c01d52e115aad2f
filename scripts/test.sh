#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests of gatehouse and voiceflow
# (the integration tests spawn both real binaries on loopback ports the OS picks).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build-deps.sh
exec cargo test --workspace "$@"
