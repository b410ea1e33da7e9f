#!/usr/bin/env bash
# Requests/s and latency of `fipsguard serve` for encrypt (1 KiB) and sign
# (ECDSA P-256), over loopback HTTPS with keep-alive, side by side in one run
# with a bare HTTPS echo server on the same FIPS TLS stack (the limit on
# this machine). Load generator: wrk (Debian package).
#
#   bench/serve.sh [SECONDS] [CONNECTIONS]     default: 10 s, 64 connections
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
seconds=${1:-10}
connections=${2:-64}
cargo build --release --locked -q --bin fipsguard -p fipsguard
cargo build --release --locked -q -p fipsguard-server --example echo
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

target/release/examples/echo 127.0.0.1:18501 "$work/echo-ca.pem" >/dev/null &
pids+=($!)
FIPSGUARD_LOG=${FIPSGUARD_LOG:-info} target/release/fipsguard serve --dev --listen 127.0.0.1:18502 --dev-info "$work/dev.json" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/dev.json" ] && [ -s "$work/echo-ca.pem" ] && break; sleep 0.1; done

field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n1 | sed -E 's/.*: *"([^"]*)"/\1/'; }
officer=$(field officer_token <"$work/dev.json")
ca=$(field ca_file <"$work/dev.json")
api() { curl -sS --fail-with-body --cacert "$ca" -H "Content-Type: application/json" -H "Authorization: Bearer $officer" "$@"; }
api -d '{"name": "bench", "type": "aes256-gcm"}' https://127.0.0.1:18502/v1/keys >/dev/null
api -d '{"name": "bench-signer", "type": "ecdsa-p256"}' https://127.0.0.1:18502/v1/keys >/dev/null
user=$(api -d '{"role": "user", "grants": [{"keys": "bench*", "operations": ["encrypt", "sign"]}]}' \
  https://127.0.0.1:18502/v1/tokens | field token)

kib=$(head -c 1024 /dev/zero | base64 -w0)
lua() {  # PATH BODY
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $user"
LUA
}
lua "$work/echo.lua" "{\"plaintext\": \"$kib\"}"
lua "$work/encrypt.lua" "{\"plaintext\": \"$kib\"}"
lua "$work/sign.lua" '{"message": "YSBtZXNzYWdlIHRvIHNpZ24="}'

run() {  # NAME URL SCRIPT
  local out
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$3" "$2")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "warning: $1: $errors" >&2
  printf '%s %s %s %s\n' "$1" "$rps" "$p50" "$p99"
}
{
  run echo https://127.0.0.1:18501/echo "$work/echo.lua"
  run encrypt https://127.0.0.1:18502/v1/keys/bench/encrypt "$work/encrypt.lua"
  run sign https://127.0.0.1:18502/v1/keys/bench-signer/sign "$work/sign.lua"
} | awk '
  { name[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4 }
  END {
    printf "%-10s %12s %10s %10s %14s\n", "endpoint", "requests/s", "p50", "p99", "vs echo"
    for (i = 1; i <= NR; i++) printf "%-10s %12.0f %10s %10s %13.0f%%\n", name[i], rps[i], p50[i], p99[i], 100 * rps[i] / rps[1]
  }'
