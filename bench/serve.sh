#!/usr/bin/env bash
# Requests/s and latency of `fipsguard serve` for encrypt (1 KiB) and sign
# (ECDSA P-256), over loopback HTTPS with keep-alive, side by side in one run
# with a bare HTTPS echo server on the same FIPS TLS stack (the limit on
# this machine) and with a server whose audit log is off (what durable
# auditing costs). The echo server is also run with the plainest durable
# group commit (`--durable`): what that design of an answer given only
# after a synced write costs here, whatever the record. A third instance
# (`--encrypt`) answers an encrypt with only the work no encrypt API can do
# without (token HMAC, JSON, base64, AES-256-GCM seal with the module's
# IV): the limit for an encrypt on this machine. Each run also
# reports the whole machine's CPU time per request (server and wrk share
# it; time stolen by the hypervisor is not counted).
# Load generator: wrk (Debian package).
#
#   bench/serve.sh [SECONDS] [CONNECTIONS] [ROUNDS]   default: 10 s, 256 connections, 3 rounds
#
# BENCH_BIN=DIR measures the binaries in DIR (fipsguard, examples/echo)
# as they are, instead of building target/release (bench/pgo.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
seconds=${1:-10}
connections=${2:-256}
rounds=${3:-3}
source bench/serve-common.sh
ports_free 18501 18502 18503 18504 18505
# Both durable servers write under $work: on tmpfs a sync costs nothing.
if [ "$(stat -f -c %T "$work")" = tmpfs ]; then
  echo "$work is on tmpfs, where fdatasync does nothing: set TMPDIR to a disk" >&2
  exit 1
fi

"$bin/examples/echo" 127.0.0.1:18501 "$work/echo-ca.pem" >/dev/null &
pids+=($!)
wait_for "$work/echo-ca.pem"
"$bin/examples/echo" 127.0.0.1:18504 "$work/durable-ca.pem" --durable "$work/durable.log" >/dev/null &
pids+=($!)
wait_for "$work/durable-ca.pem"
bare_token=$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d =)
"$bin/examples/echo" 127.0.0.1:18505 "$work/bare-ca.pem" --encrypt "$bare_token" >/dev/null &
pids+=($!)
wait_for "$work/bare-ca.pem"

kib=$(head -c 1024 /dev/zero | base64 -w0)
lua() {  # PATH TOKEN BODY
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$3'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
LUA
}
lua "$work/echo.lua" none "{\"plaintext\": \"$kib\"}"
lua "$work/bare.lua" "$bare_token" "{\"plaintext\": \"$kib\"}"

# A development server (audit log on unless --dev-no-audit is given), a key
# of each kind, a user token, and wrk scripts for it in $work/NAME-*.lua.
start_server() {  # NAME PORT [FLAGS]
  local name=$1 port=$2 user
  shift 2
  FIPSGUARD_LOG=${FIPSGUARD_LOG:-info} "$bin/fipsguard" serve --dev --listen "127.0.0.1:$port" \
    --dev-info "$work/$name.json" "$@" >/dev/null 2>&1 &
  pids+=($!)
  wait_for "$work/$name.json"
  user=$(provision "$port" "$work/$name.json")
  lua "$work/$name-encrypt.lua" "$user" "{\"plaintext\": \"$kib\"}"
  lua "$work/$name-sign.lua" "$user" '{"message": "YSBtZXNzYWdlIHRvIHNpZ24="}'
}
start_server audited 18502
start_server unaudited 18503 --dev-no-audit

# Busy CPU time of the whole machine so far, in clock ticks (user, nice,
# system, irq, softirq).
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

run() {  # NAME URL SCRIPT
  local out before after
  before=$(busy)
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$3" "$2")
  after=$(busy)
  local rps p50 p99 requests cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN {if (n > 0) printf "%.1f", ticks / hz / n * 1e6; else printf "nan"}')
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "warning: $1: $errors" >&2
  printf '%s %s %s %s %s\n' "$1" "$rps" "$p50" "$p99" "$cpu"
}
# Rounds in turn (echo, durable echo, bare encrypt, encrypt, encrypt
# without audit, sign), so a slow moment of a shared machine hits every
# endpoint alike; the table shows each endpoint's median round.
for _ in $(seq "$rounds"); do
  run echo https://127.0.0.1:18501/echo "$work/echo.lua"
  run echo-durable https://127.0.0.1:18504/echo "$work/echo.lua"
  run bare-encrypt https://127.0.0.1:18505/encrypt "$work/bare.lua"
  run encrypt https://127.0.0.1:18502/v1/keys/bench/encrypt "$work/audited-encrypt.lua"
  run encrypt-no-audit https://127.0.0.1:18503/v1/keys/bench/encrypt "$work/unaudited-encrypt.lua"
  run sign https://127.0.0.1:18502/v1/keys/bench-signer/sign "$work/audited-sign.lua"
done | awk '
  { order[$1] = order[$1] ? order[$1] : ++names; n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4; cpu[$1, n[$1]] = $5 }
  # Fills idx[1..k] with the rounds 1..k in the order of their v (an
  # insertion sort of the few rounds).
  function by_value(v, k, idx,    i, j, t) {
    for (i = 1; i <= k; i++) idx[i] = i
    for (i = 2; i <= k; i++) for (j = i; j > 1 && v[idx[j]] < v[idx[j - 1]]; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
  }
  END {
    for (name in n) {
      # The median round by requests/s.
      for (i = 1; i <= n[name]; i++) v[i] = rps[name, i]
      by_value(v, n[name], idx)
      m = idx[int((n[name] + 1) / 2)]
      med[name] = rps[name, m]; mp50[name] = p50[name, m]; mp99[name] = p99[name, m]; mcpu[name] = cpu[name, m]; label[order[name]] = name
    }
    printf "%-17s %12s %10s %10s %8s %14s\n", "endpoint", "requests/s", "p50", "p99", "vs echo", "CPU us/request"
    for (i = 1; i <= names; i++) { x = label[i]; printf "%-17s %12.0f %10s %10s %7.0f%% %14.1f\n", x, med[x], mp50[x], mp99[x], 100 * med[x] / med["echo"], mcpu[x] }
    printf "\nencrypt without the audit log vs the bare encrypt: %.0f%% (the bare encrypt is %.0f%% of echo)\n", 100 * med["encrypt-no-audit"] / med["bare-encrypt"], 100 * med["bare-encrypt"] / med["echo"]
    # The encrypt of each round against the echo of the same round: how far a
    # shared machine moves the ratio from round to round.
    for (i = 1; i <= n["echo"]; i++) ratio[i] = 100 * rps["encrypt-no-audit", i] / rps["echo", i]
    by_value(ratio, n["echo"], idx)
    printf "encrypt without the audit log vs echo, round by round: median %.0f%%, from %.0f%% to %.0f%%\n", ratio[idx[int((n["echo"] + 1) / 2)]], ratio[idx[1]], ratio[idx[n["echo"]]]
    printf "encrypt with the audit log on (durable) vs off: %.0f%% (medians of %d rounds)\n", 100 * med["encrypt"] / med["encrypt-no-audit"], n["encrypt"]
    printf "echo with the plainest durable group commit vs without: %.0f%%\n", 100 * med["echo-durable"] / med["echo"]
    printf "machine CPU added per request: %.1f us by the audit log, %.1f us by the plainest durable commit;\n", mcpu["encrypt"] - mcpu["encrypt-no-audit"], mcpu["echo-durable"] - mcpu["echo"]
    printf "90%% of the unaudited server leaves the audit log %.1f us\n", mcpu["encrypt-no-audit"] / 0.9 - mcpu["encrypt-no-audit"]
  }'
