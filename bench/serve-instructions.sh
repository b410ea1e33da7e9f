#!/usr/bin/env bash
# User-space instructions per request of `fipsguard serve` (encrypt of
# 1 KiB, audit log off unless asked), of the bare HTTPS echo server and of
# its bare encrypt (`echo --encrypt`: only the work no encrypt API can do
# without), counted by valgrind's callgrind over one keep-alive TLS
# connection. Unlike
# requests/s, the count does not depend on what else the machine is doing,
# so it shows what a change to the request path costs or saves.
#
#   bench/serve-instructions.sh [REQUESTS] [audited]   default: 2000, audit log off
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

# Counts the instructions of `requests` requests after 200 to warm up.
count() {  # NAME PID PORT CA PATH TOKEN
  local name=$1 pid=$2 total
  python3 "$work/load.py" "$3" "$4" "$5" "$6" 200
  callgrind_control -i on "$pid" >/dev/null
  python3 "$work/load.py" "$3" "$4" "$5" "$6" "$requests"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  total=$(callgrind_annotate "$(ls "$work/$name".out.* | head -n1)" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo $((total / requests))
}

callgrind() { exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$1.out" "${@:2}"; }

callgrind echo target/release/examples/echo 127.0.0.1:18521 "$work/echo-ca.pem" >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/echo-ca.pem"
echo_count=$(count echo "${pids[-1]}" 18521 "$work/echo-ca.pem" /echo none)

callgrind bare target/release/examples/echo 127.0.0.1:18523 "$work/bare-ca.pem" --encrypt bare-token >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/bare-ca.pem"
bare_count=$(count bare "${pids[-1]}" 18523 "$work/bare-ca.pem" /encrypt bare-token)

callgrind serve target/release/fipsguard serve --dev "${audit[@]}" --listen 127.0.0.1:18522 \
  --dev-info "$work/dev.json" >/dev/null 2>&1 &
pids+=($!)
wait_for "$work/dev.json"
user=$(provision 18522 "$work/dev.json")
encrypt_count=$(count serve "${pids[-1]}" 18522 "$(field ca_file <"$work/dev.json")" /v1/keys/bench/encrypt "$user")

printf '%-28s %12s\n' "request" "instructions"
printf '%-28s %12s\n' "echo (baseline)" "$echo_count"
printf '%-28s %12s\n' "bare encrypt 1 KiB" "$bare_count"
printf '%-28s %12s\n' "encrypt 1 KiB, $label" "$encrypt_count"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "encrypt costs $(ratio "$encrypt_count" "$echo_count")x the echo server's instructions and $(ratio "$encrypt_count" "$bare_count")x the bare encrypt's"
