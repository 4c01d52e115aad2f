#!/usr/bin/env bash
# Idle WebSocket memory by hand (not in CI): release builds of gatehouse, voiceflow and the
# bare Pingora proxy, a raised file-descriptor limit, then benches/wsmem.rs.
#   benches/wsmem.sh [SOCKETS=3000] [WAIT_S=60] [PROXIES=gatehouse,bare,nginx]
#   GATEHOUSE_ENV="MALLOC_ARENA_MAX=2" benches/wsmem.sh 3000 60 gatehouse   # allocator settings
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build-deps.sh
cargo build --release -p voiceflow -p gatehouse --bins --example bare_pingora 2>&1 | tail -1
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec cargo bench --bench wsmem -- "$@"
