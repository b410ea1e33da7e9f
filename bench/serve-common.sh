# Sourced by the `fipsguard serve` benchmarks (serve.sh,
# serve-instructions.sh, pgo.sh): the release build of both servers (in
# $bin: target/release, or BENCH_BIN for a build made elsewhere, which is
# taken as it is), a work directory whose servers stop on exit, and a
# development server set up with keys and a user token.

bin=${BENCH_BIN:-target/release}
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --locked -q --bin fipsguard -p fipsguard
  cargo build --release --locked -q -p fipsguard-server --example echo
elif ! [ -x "$bin/fipsguard" ] || ! [ -x "$bin/examples/echo" ]; then
  echo "BENCH_BIN=$bin (from the repository's root) holds no fipsguard and examples/echo" >&2
  exit 2
fi
echo "binaries measured: $bin" >&2
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -rf "$work"' EXIT

# Stops unless PORTS are free: a server left from an earlier run would
# answer in place of the one under test.
ports_free() {  # PORT...
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port is taken (a server left from an earlier run?); stop it first" >&2
      exit 1
    fi
  done
}

# A string field of a JSON document on stdin.
field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n1 | sed -E 's/.*: *"([^"]*)"/\1/'; }

# Waits for FILE, written by the last server started, which must still run.
wait_for() {  # FILE
  for _ in $(seq 600); do
    [ -s "$1" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "the server under test exited" >&2; exit 1; }
    sleep 0.2
  done
  echo "$1 never appeared" >&2
  exit 1
}

# On the development server whose --dev-info is INFO: the keys `bench`
# (AES-256-GCM) and `bench-signer` (ECDSA P-256), and a user token allowed
# to encrypt and sign with them, printed.
provision() {  # PORT INFO
  local officer ca
  officer=$(field officer_token <"$2")
  ca=$(field ca_file <"$2")
  api() { curl -sS --fail-with-body --cacert "$ca" -H "Content-Type: application/json" -H "Authorization: Bearer $officer" "$@"; }
  api -d '{"name": "bench", "type": "aes256-gcm"}' "https://127.0.0.1:$1/v1/keys" >/dev/null
  api -d '{"name": "bench-signer", "type": "ecdsa-p256"}' "https://127.0.0.1:$1/v1/keys" >/dev/null
  api -d '{"role": "user", "grants": [{"keys": "bench*", "operations": ["encrypt", "sign"]}]}' \
    "https://127.0.0.1:$1/v1/tokens" | field token
}
