#!/usr/bin/env bash
# User-space instructions per request of `fipsguard serve` (encrypt of
# 1 KiB, audit log off unless asked), of the bare HTTPS echo server and of
# its bare encrypt (`echo --encrypt`: only the work no encrypt API can do
# without), counted by valgrind's callgrind over one keep-alive TLS
# connection. Unlike
# requests/s, the count does not depend on what else the machine is doing,
# so it shows what a change to the request path costs or saves. Beside it,
# callgrind's simulated first-level cache misses per request, for code
# and for data: code spread over more lines of cache costs more time per
# instruction.
#
#   bench/serve-instructions.sh [REQUESTS] [audited]   default: 2000, audit log off
#
# BENCH_BIN=DIR measures the binaries in DIR (fipsguard, examples/echo)
# as they are, instead of building target/release (bench/pgo.sh does).
#
# With `audited`, the server keeps its audit log: over one connection each
# request is then a flush of its own (event, checkpoint signature, sync),
# the audit log's fixed cost per flush at its largest.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
requests=${1:-2000}
case ${2:-} in
  "") audit=(--dev-no-audit) label="audit off" ;;
  audited) audit=() label="audit on" ;;
  *) echo "usage: bench/serve-instructions.sh [REQUESTS] [audited]" >&2; exit 2 ;;
esac
source bench/serve-common.sh
ports_free 18521 18522 18523

# Sends N POSTs of a 1 KiB body (base64 in JSON) on one connection.
cat >"$work/load.py" <<'PY'
import base64, http.client, json, ssl, sys, time
port, ca, path, token, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
body = json.dumps({"plaintext": base64.b64encode(bytes(1024)).decode()})
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
connection = http.client.HTTPSConnection("127.0.0.1", int(port), context=ssl.create_default_context(cafile=ca))
for _ in range(600):  # the server may write its CA file before it listens
    try:
        connection.connect()
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
for _ in range(n):
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
PY

# Counts the instructions, code cache misses and data cache misses of
# `requests` requests after 200 to warm up, per request.
count() {  # NAME PID PORT CA PATH TOKEN
  local name=$1 pid=$2
  python3 "$work/load.py" "$3" "$4" "$5" "$6" 200
  callgrind_control -i on "$pid" >/dev/null
  python3 "$work/load.py" "$3" "$4" "$5" "$6" "$requests"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  # Totals: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, each with a share.
  callgrind_annotate "$(ls "$work/$name".out.* | head -n1)" | awk -v n="$requests" '
    /PROGRAM TOTALS/ {gsub(/,|\([^)]*\)/, ""); printf "%d %d %d\n", $1 / n, $4 / n, ($5 + $6) / n}'
}

callgrind() {
  exec valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no \
    --callgrind-out-file="$work/$1.out" "${@:2}"
}

callgrind echo "$bin/examples/echo" 127.0.0.1:18521 "$work/echo-ca.pem" >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/echo-ca.pem"
echo_count=$(count echo "${pids[-1]}" 18521 "$work/echo-ca.pem" /echo none)

callgrind bare "$bin/examples/echo" 127.0.0.1:18523 "$work/bare-ca.pem" --encrypt bare-token >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/bare-ca.pem"
bare_count=$(count bare "${pids[-1]}" 18523 "$work/bare-ca.pem" /encrypt bare-token)

callgrind serve "$bin/fipsguard" serve --dev "${audit[@]}" --listen 127.0.0.1:18522 \
  --dev-info "$work/dev.json" >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/dev.json"
user=$(provision 18522 "$work/dev.json")
encrypt_count=$(count serve "${pids[-1]}" 18522 "$(field ca_file <"$work/dev.json")" /v1/keys/bench/encrypt "$user")

row() { printf '%-28s %12s %12s %12s\n' "$@"; }
row "request" "instructions" "code misses" "data misses"
row "echo (baseline)" $echo_count
row "bare encrypt 1 KiB" $bare_count
row "encrypt 1 KiB, $label" $encrypt_count
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
read -r echo_ir echo_i1 _ <<<"$echo_count"
read -r bare_ir bare_i1 _ <<<"$bare_count"
read -r encrypt_ir encrypt_i1 _ <<<"$encrypt_count"
echo "encrypt costs $(ratio "$encrypt_ir" "$echo_ir")x the echo server's instructions and $(ratio "$encrypt_ir" "$bare_ir")x the bare encrypt's"
echo "and misses the code cache $(ratio "$encrypt_i1" "$echo_i1")x as often as the echo server, $(ratio "$encrypt_i1" "$bare_i1")x as often as the bare encrypt"
