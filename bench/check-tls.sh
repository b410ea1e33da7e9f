#!/usr/bin/env bash
# `fipsguard check tls` against testssl.sh on the same 20 local endpoints,
# side by side in one run: five `openssl s_server` configurations (approved
# only, TLS 1.1, ChaCha20, SHA-1 signatures, RSA-1024) four times each.
# testssl runs only what yields the same findings (--protocols
# --cipher-per-proto, in its --parallel mass-scan mode); fipsguard runs its
# whole scan (versions, every suite, groups, weak signature hashes, one
# approved handshake, the certificate chain). Prints wall-clock seconds and
# the ratio.
#
#   bench/check-tls.sh        (needs openssl, testssl.sh, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in openssl testssl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install testssl.sh)" >&2; exit 2; }
done
cargo build --release --locked -q -p fipsguard --bin fipsguard
fg=$PWD/target/release/fipsguard

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -nodes -days 30 -subj /CN=localhost -newkey rsa:2048 -keyout rsa.key -out rsa.pem 2>/dev/null
openssl req -x509 -nodes -days 30 -subj /CN=localhost -newkey rsa:1024 -keyout weak.key -out weak.pem 2>/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls13=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384
configs=(
  "rsa|-cipher ECDHE-RSA-AES128-GCM-SHA256 -ciphersuites $tls13"
  "rsa|-min_protocol TLSv1.1 -cipher ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:@SECLEVEL=0 -ciphersuites $tls13"
  "rsa|-cipher ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305 -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
  "rsa|-cipher ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0 -ciphersuites $tls13 -sigalgs RSA+SHA1:RSA-PSS+SHA256:RSA+SHA256"
  "weak|-cipher DEFAULT:@SECLEVEL=0"
)
targets=()
for round in 1 2 3 4; do
  for config in "${configs[@]}"; do
    cert=${config%%|*}; flags=${config#*|}
    p=$(port)
    # shellcheck disable=SC2086
    openssl s_server -quiet -accept 127.0.0.1:"$p" -cert "$cert.pem" -key "$cert.key" -groups P-256:P-384 $flags \
      </dev/null >/dev/null 2>&1 & pids+=($!)
    targets+=("127.0.0.1:$p")
  done
done
sleep 1
printf '%s\n' "${targets[@]/#/--protocols --cipher-per-proto --quiet --warnings off --color 0 }" >testssl.txt

start=$(date +%s.%N)
"$fg" check tls --format json "${targets[@]}" >fipsguard.json || true
fg_secs=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")

start=$(date +%s.%N)
testssl --quiet --warnings off --color 0 --parallel --file testssl.txt --jsonfile testssl.json >/dev/null 2>&1 || true
ts_secs=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")

# The same findings: accepted (protocol, suite) pairs counted from both reports.
python3 - <<'PY'
import json, re
ours = sum(
    1
    for r in json.load(open("fipsguard.json"))["reports"]
    for f in r["findings"] if f["id"] == "tls.cipher-suites"
    for line in f["evidence"] if re.match(r"(SSL|TLS)\d\.\d 0x", line)
)
theirs = json.load(open("testssl.json"))
theirs = theirs if isinstance(theirs, list) else [e for r in theirs.get("scanResult", []) for e in r.get("cipherTests", [])]
print(f"accepted suites found: fipsguard {ours}, testssl {sum(1 for e in theirs if e['id'].startswith('cipher-'))}")
PY
echo "endpoints: ${#targets[@]}"
echo "fipsguard check tls: ${fg_secs} s"
echo "testssl.sh --protocols --cipher-per-proto --parallel: ${ts_secs} s"
python3 -c "print(f'ratio: fipsguard is {$ts_secs / $fg_secs:.0f}x faster')"
