#!/usr/bin/env bash
# File encryption against its baselines, all in one run on the same 1 GiB
# file: raw AES-256-GCM of the module on one core in
# memory (the cipher's limit), plain copies of the file with `cat` and `cp`
# (the faster is the I/O limit),
# `fipsguard encrypt` / `decrypt` against a local development server, `age`
# and `gpg --symmetric --cipher-algo AES256 --compress-algo none`.
# Prints the table BENCHMARKS.md keeps.
#
#   bench/files.sh [RUNS]      (default 5 runs each; needs hyperfine, age, gpg)
#
# The files live in memory (/dev/shm, or $FIPSGUARD_BENCH_DIR), so the copy
# measures the machine's memory-to-memory I/O limit, not a disk's; about
# 4 GiB are used at most.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for tool in hyperfine age age-keygen gpg python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install hyperfine age gnupg)" >&2; exit 2; }
done

cargo build --release --locked -q -p fipsguard --bin fipsguard
cargo build --release --locked -q -p fipsguard-crypto --example gcm_throughput
fg=$PWD/target/release/fipsguard

work=$(mktemp -d -p "${FIPSGUARD_BENCH_DIR:-/dev/shm}")
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
"$fg" serve --dev --dev-no-audit --listen 127.0.0.1:0 --dev-info "$work/dev.json" >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do [ -s "$work/dev.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open('$work/dev.json'))['$1'])"; }
export FIPSGUARD_ADDR=$(field url) FIPSGUARD_CACERT=$(field ca_file) FIPSGUARD_TOKEN=$(field officer_token)
"$fg" key create bench >/dev/null
FIPSGUARD_TOKEN=$("$fg" token create --role user --grant bench:datakey,decrypt --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export FIPSGUARD_TOKEN

head -c $((1 << 30)) /dev/urandom >"$work/in"
age-keygen -o "$work/age.key" 2>/dev/null
recipient=$(age-keygen -y "$work/age.key")
"$fg" encrypt --key bench --quiet "$work/in" "$work/in.fg"
age -r "$recipient" -o "$work/in.age" "$work/in"
gpg_args=(--batch --yes --quiet --pinentry-mode loopback --passphrase bench --homedir "$work")

# The cipher's limit, in the same run: the best of three.
raw=$(for _ in 1 2 3; do target/release/examples/gcm_throughput; done | sort -n | head -n1)

hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/runs.json" \
  --prepare "rm -f $work/copy $work/copy.cp $work/out.fg $work/out.plain $work/out.age $work/out.age.plain $work/out.gpg" \
  -n "copy (cat)" "sh -c 'cat $work/in > $work/copy'" \
  -n "copy (cp)" "cp $work/in $work/copy.cp" \
  -n "fipsguard encrypt" "$fg encrypt --key bench --quiet $work/in $work/out.fg" \
  -n "fipsguard decrypt" "$fg decrypt --quiet $work/in.fg $work/out.plain" \
  -n "age encrypt" "age -r $recipient -o $work/out.age $work/in" \
  -n "age decrypt" "age -d -i $work/age.key -o $work/out.age.plain $work/in.age" \
  -n "gpg --symmetric AES256" "gpg ${gpg_args[*]} --symmetric --cipher-algo AES256 --compress-algo none -o $work/out.gpg $work/in" \
  >/dev/null

python3 - "$work/runs.json" "$raw" <<'PY'
import json, sys
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
raw_secs, raw_mibs = map(float, sys.argv[2].split())
copy = min(runs["copy (cat)"]["median"], runs["copy (cp)"]["median"])
print(f"raw AES-256-GCM, one core, in memory: {raw_mibs:.0f} MiB/s ({raw_secs:.3f} s per GiB)")
print(f"{'1 GiB file':<24} {'median':>9} {'MiB/s':>7} {'vs raw GCM':>11} {'vs fastest copy':>16}")
for name, r in runs.items():
    t = r["median"]
    print(f"{name:<24} {t:>7.3f} s {1024/t:>7.0f} {raw_secs/t:>10.0%} {copy/t:>16.0%}")
print(f"fipsguard encrypt vs age encrypt: {runs['age encrypt']['median']/runs['fipsguard encrypt']['median']:.2f}x faster")
print(f"fipsguard decrypt vs age decrypt: {runs['age decrypt']['median']/runs['fipsguard decrypt']['median']:.2f}x faster")
PY
