#!/usr/bin/env bash
# fipsguard tunnel against stunnel (OpenSSL), side by side in one run, both
# on TLS 1.3 with TLS_AES_256_GCM_SHA384 and P-256, the same certificates:
#  - bulk: 1 GiB through a client + server tunnel pair (socat in, socat
#    out to /dev/null), the best of ROUNDS;
#  - handshakes: new TLS handshakes per second against a server tunnel
#    (openssl s_time -new, 10 s, the same client for both).
# Prints the table BENCHMARKS.md keeps.
#
#   bench/tunnel.sh [ROUNDS]    (default 3; needs stunnel4, socat, hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
for tool in stunnel socat hyperfine openssl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install stunnel4 socat hyperfine)" >&2; exit 2; }
done
cargo build --release --locked -q -p fipsguard --bin fipsguard
fg=$PWD/target/release/fipsguard

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -new -nodes -days 2 -subj "/CN=bench CA" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -addext basicConstraints=critical,CA:TRUE -keyout ca.key -out ca.pem 2>/dev/null
openssl req -new -nodes -subj /CN=localhost -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout server.key -out server.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n' >ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.pem 2>/dev/null
printf 'openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\nGroups = P-256\n' >p256.cnf

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sink=$(port); closer=$(port)
socat -u -b 131072 TCP-LISTEN:"$sink",reuseaddr,fork OPEN:/dev/null & pids+=($!)
socat TCP-LISTEN:"$closer",reuseaddr,fork EXEC:true & pids+=($!)

# fipsguard: a server tunnel to the sink, a client tunnel to it; a server
# tunnel to the closer for handshakes.
fg_server=$(port); fg_client=$(port); fg_hs=$(port)
"$fg" tunnel server --listen 127.0.0.1:"$fg_server" --target 127.0.0.1:"$sink" --cert server.pem --key server.key --disable-authentication 2>/dev/null & pids+=($!)
"$fg" tunnel client --listen 127.0.0.1:"$fg_client" --target 127.0.0.1:"$fg_server" --server-name localhost --cacert ca.pem 2>/dev/null & pids+=($!)
"$fg" tunnel server --listen 127.0.0.1:"$fg_hs" --target 127.0.0.1:"$closer" --cert server.pem --key server.key --disable-authentication 2>/dev/null & pids+=($!)

# stunnel: the same three.
st_server=$(port); st_client=$(port); st_hs=$(port)
cat >stunnel.conf <<CONF
foreground = yes
pid =
debug = 3
[server]
accept = 127.0.0.1:$st_server
connect = 127.0.0.1:$sink
cert = server.pem
key = server.key
sslVersionMin = TLSv1.3
ciphersuites = TLS_AES_256_GCM_SHA384
curves = P-256
[client]
client = yes
accept = 127.0.0.1:$st_client
connect = 127.0.0.1:$st_server
CAfile = ca.pem
verifyChain = yes
checkHost = localhost
sslVersionMin = TLSv1.3
ciphersuites = TLS_AES_256_GCM_SHA384
curves = P-256
[handshakes]
accept = 127.0.0.1:$st_hs
connect = 127.0.0.1:$closer
cert = server.pem
key = server.key
sslVersionMin = TLSv1.3
ciphersuites = TLS_AES_256_GCM_SHA384
curves = P-256
CONF
stunnel stunnel.conf 2>/dev/null & pids+=($!)
sleep 2

send() { echo "head -c 1073741824 /dev/zero | socat -u -b 131072 - TCP:127.0.0.1:$1"; }
hyperfine -N --warmup 1 --runs "$rounds" --export-json bulk.json \
  -n "fipsguard tunnel pair" "sh -c '$(send "$fg_client")'" \
  -n "stunnel pair" "sh -c '$(send "$st_client")'" >/dev/null

handshakes() {
  OPENSSL_CONF=$work/p256.cnf openssl s_time -connect 127.0.0.1:"$1" -new -time 10 -CAfile ca.pem \
    -ciphersuites TLS_AES_256_GCM_SHA384 2>/dev/null | awk '/connections in .* real seconds/ {print $1 / $4}' | tail -n1
}
fg_rate=$(handshakes "$fg_hs"); st_rate=$(handshakes "$st_hs")
fg_rate2=$(handshakes "$fg_hs"); st_rate2=$(handshakes "$st_hs")

python3 - bulk.json "$fg_rate" "$st_rate" "$fg_rate2" "$st_rate2" <<'PY'
import json, sys
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
fg, st = runs["fipsguard tunnel pair"]["min"], runs["stunnel pair"]["min"]
print(f"{'1 GiB through a client+server pair':<36} {'best':>8} {'MiB/s':>7}")
print(f"{'fipsguard tunnel':<36} {fg:>6.3f} s {1024/fg:>7.0f}")
print(f"{'stunnel (OpenSSL)':<36} {st:>6.3f} s {1024/st:>7.0f}")
print(f"throughput, fipsguard / stunnel: {st/fg:.2f}")
rates = [float(x) for x in sys.argv[2:]]
fg_hs, st_hs = max(rates[0], rates[2]), max(rates[1], rates[3])
print(f"new handshakes/s (s_time -new, best of 2): fipsguard {fg_hs:.0f}, stunnel {st_hs:.0f}, ratio {fg_hs/st_hs:.2f}")
PY
