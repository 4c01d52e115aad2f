#!/usr/bin/env bash
# Proxy CPU per request, in one run on loopback, over the same tiny nginx upstream (11 bytes):
# direct, nginx as a proxy, a bare Pingora proxy (benches/bare_pingora.rs), Gatehouse with one
# public route, and Gatehouse with a full policy (HS256 JWT + claims + CIDR + CORS + rate
# limit, all enforced). One worker each, wrk -t1. Prints req/s, p50, p99 and each proxy's own
# CPU µs per request (utime+stime from /proc: the figure that holds on a noisy machine), with
# the ratio to bare Pingora (sent the same requests) and to nginx. Run by hand, never in CI.
#
# The proxies are measured in ROUNDS interleaved rounds (each proxy once per round, in turn) and
# the figures are the medians: on a shared 2-core machine one run of one proxy moves by ±10 %,
# and interleaving spreads a slow spell over all of them. Each round's CPU figures are printed
# too, so the spread is visible.
# Needs: apt-get install -y nginx wrk. Usage: benches/load.sh [DURATION_S=8] [CONNS=50] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-8}; conns=${2:-50}; rounds=${3:-5}
source scripts/ensure-build-deps.sh
command -v nginx >/dev/null && command -v wrk >/dev/null || { echo "needs: apt-get install -y nginx wrk" >&2; exit 2; }
cargo build --release --bin gatehouse --example bare_pingora 2>&1 | tail -1
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/logs"   # logs beside, not in, the watched policy folder (as journald would be)
UP=18281 NG=18282 BP=18283 GP=18284 GF=18285
cat >"$work/up.conf" <<C
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '{"ok":true}'; } } }
C
cat >"$work/ng.conf" <<C
worker_processes 1; daemon off; pid $work/ng.pid; error_log $work/ng.err;
events { worker_connections 4096; }
http { access_log off; upstream u { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG; location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
cat >"$work/plain.yaml" <<Y
version: 1
server: { listen: [{ addr: "127.0.0.1:$GP" }] }
upstream: { addr: "127.0.0.1:$UP" }
routes:
  - { name: all, match: { prefix: / }, auth: none }
Y
cat >"$work/full.yaml" <<Y
version: 1
server:
  listen: [{ addr: "127.0.0.1:$GF" }]
  limits: { connections_per_ip: 1000, auth_failures_per_ip: "100/1m" }
upstream: { addr: "127.0.0.1:$UP" }
access: { deny: ["203.0.113.0/24"], allow: ["127.0.0.0/8"] }
auth:
  jwt:
    jwt: { algorithms: [HS256], secret_env: BENCH_SECRET, issuer: "https://auth.test", audience: api }
origins:
  web: ["https://app.example.com"]
routes:
  - name: api
    match: { prefix: / }
    auth: jwt
    require: { claims: { role: [tester] } }
    cors: { origins: web, credentials: true, methods: [GET] }
    rate_limit: { per_ip: "100000000/1s" }
Y
export BENCH_SECRET=bench-secret-0123456789abcdef-0123456789
TOKEN=$(python3 - <<'P'
import base64, hmac, hashlib, json, os, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = b(json.dumps({"sub": "bench", "role": "tester", "iss": "https://auth.test", "aud": "api", "exp": int(time.time()) + 3600}).encode())
s = b(hmac.new(os.environ["BENCH_SECRET"].encode(), h + b"." + c, hashlib.sha256).digest())
print((h + b"." + c + b"." + s).decode())
P
)
nginx -c "$work/up.conf" & pids+=($!)
nginx -c "$work/ng.conf" & pids+=($!)
target/release/examples/bare_pingora "127.0.0.1:$BP" "127.0.0.1:$UP" >/dev/null 2>&1 & pids+=($!); bare=$!
target/release/gatehouse run -c "$work/plain.yaml" --threads 1 --log-format json 2>"$work/logs/plain.log" >/dev/null & pids+=($!); plain=$!
target/release/gatehouse run -c "$work/full.yaml" --threads 1 --log-format json 2>"$work/logs/full.log" >/dev/null & pids+=($!); full=$!
sleep 2
tck=$(getconf CLK_TCK)
cpu() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/"$p"/stat))); done; echo $t; }
ngpid() { echo "$(cat "$work/ng.pid") $(pgrep -P "$(cat "$work/ng.pid")" | tr '\n' ' ')"; }
run() { # name port pids... ; extra wrk args in WRK_EXTRA (array)
  local name=$1 port=$2; shift 2
  local before after out reqs rps p50 p99 us
  before=$(cpu "$@")
  out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "${WRK_EXTRA[@]}" "http://127.0.0.1:$port/")
  after=$(cpu "$@")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  us="-"; [ "$#" -gt 0 ] && us=$(awk -v t=$((after - before)) -v k="$tck" -v r="$reqs" 'BEGIN{printf "%.1f", t*1e6/k/r}')
  echo "$name $rps $p50 $p99 $us" >>"$work/rounds"
}
hdrs=(-H "Authorization: Bearer $TOKEN" -H "Origin: https://app.example.com")
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  WRK_EXTRA=()
  run direct $UP
  # shellcheck disable=SC2046
  run nginx $NG $(ngpid)
  run bare-pingora $BP $bare
  run gatehouse-plain $GP $plain
  # The same requests (token and Origin headers) through bare Pingora: what the full policy is
  # compared with, so that parsing and forwarding the longer request is not counted as policy.
  WRK_EXTRA=("${hdrs[@]}")
  run bare-pingora-hdrs $BP $bare
  run gatehouse-full $GF $full
done
grep -q '"status":200' "$work/logs/full.log" || grep -q status=200 "$work/logs/full.log" || echo "warning: the full policy answered no 200: check $work/full.log" >&2
python3 - "$work/rounds" <<'PY'
import collections, statistics, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, rps, p50, p99, us = line.split()
    rows.setdefault(name, []).append((float(rps), p50, p99, None if us == "-" else float(us)))
med = lambda xs: statistics.median(xs)
print("%-18s %10s %9s %9s %11s   %s" % ("proxy", "req/s", "p50", "p99", "cpu_us/req", "cpu_us/req per round"))
cpu = {}
for name, rs in rows.items():
    us = [r[3] for r in rs if r[3] is not None]
    cpu[name] = med(us) if us else None
    mid = sorted(rs, key=lambda r: r[0])[len(rs) // 2]  # the round with the median req/s
    print("%-18s %10.0f %9s %9s %11s   %s" % (name, med([r[0] for r in rs]), mid[1], mid[2],
          "-" if cpu[name] is None else "%.1f" % cpu[name], " ".join("%.1f" % u for u in us)))
b, bh, n = cpu.get("bare-pingora"), cpu.get("bare-pingora-hdrs"), cpu.get("nginx")
for name in ("gatehouse-plain", "gatehouse-full"):
    base = bh if name == "gatehouse-full" else b
    print("%s: %.2fx bare Pingora (same requests), %.2fx nginx" % (name, cpu[name] / base, cpu[name] / n))
print("gatehouse-full: %.2fx bare Pingora without the token and Origin headers" % (cpu["gatehouse-full"] / b))
PY
