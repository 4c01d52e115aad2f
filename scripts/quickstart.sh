#!/usr/bin/env bash
# Quick start: builds both binaries, starts `voiceflow server` on 127.0.0.1:9000 and Gatehouse
# in front of it on :8080 with the shipped proxy.yaml, prints a demo token and the commands to
# try, and runs until Ctrl-C (both processes stop with it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build-deps.sh
cargo build --release --workspace --bins
bin=${CARGO_TARGET_DIR:-target}/release

if [ -z "${GATEHOUSE_JWT_SECRET:-}" ]; then
  GATEHOUSE_JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 48)
  echo "GATEHOUSE_JWT_SECRET was not set: using a random one for this session."
fi
export GATEHOUSE_JWT_SECRET

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

"$bin/voiceflow" server --host 127.0.0.1 --port 9000 & pids+=($!)
"$bin/gatehouse" run -c proxy.yaml & pids+=($!)

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9901/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

# A demo HS256 token (role tester, 1 hour), signed with the secret above.
b64url() { base64 | tr -d '\n=' | tr '/+' '_-'; }
now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"sub":"demo","role":"tester","iss":"https://auth.example.com","aud":"voiceflow-api","exp":%d}' $((now + 3600)) | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$GATEHOUSE_JWT_SECRET" -binary | b64url)
TOKEN="$header.$payload.$sig"

cat <<MSG

Gatehouse is in front of voiceflow:  http://localhost:8080   (admin: http://127.0.0.1:9901/metrics)

  curl -i localhost:8080/health                                   # public
  curl -i localhost:8080/api/v1/echo                              # 401 auth_required
  curl -i -H "Authorization: Bearer $TOKEN" localhost:8080/api/v1/echo
  curl -i -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
       -d '{"name":"demo","steps":[{"say":"hello world","expect":"hello"}]}' localhost:8080/api/v1/tests/execute
  websocat -H "Authorization: Bearer $TOKEN" ws://localhost:8080/ws    # then send:
       {"action":"execute","suite":{"name":"demo","steps":[{"say":"hi","expect":"hi"}]}}
  ./target/release/gatehouse explain GET /api/v1/echo -H "Authorization: Bearer $TOKEN"

Edit proxy.yaml and save: the policy reloads (an invalid edit is refused and logged).
Ctrl-C stops both.
MSG
wait "${pids[1]}"
