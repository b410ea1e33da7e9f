#!/usr/bin/env bash
# What the module boundary costs, measured against bare aws-lc-rs in the same
# run: criterion for per-operation cost, hyperfine for process start to first
# operation (power-up self-tests included). Prints the table BENCHMARKS.md keeps.
#
#   bench/boundary.sh            (about 2 minutes after the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }

cargo bench --locked -p fipsguard-crypto --bench boundary -- \
  --warm-up-time 2 --measurement-time 5 --noplot >/dev/null
cargo build --release --locked -p fipsguard-crypto --examples -q
cargo build --release --locked -p fipsguard -q

out=$(mktemp -d)
hyperfine -N --warmup 20 --runs 300 --export-json "$out/start.json" \
  -n bare-aws-lc-rs target/release/examples/bare_first_operation \
  -n fipsguard-first-operation target/release/examples/first_operation \
  -n "fipsguard selftest" "target/release/fipsguard selftest" >/dev/null

python3 - "$out/start.json" <<'PY'
import json, sys, pathlib
crit = pathlib.Path("target/criterion")
def mean_ns(group, fn):
    return json.loads((crit / group / fn / "new" / "estimates.json").read_text())["mean"]["point_estimate"]
print(f"{'operation':<24} {'aws-lc-rs direct':>17} {'fipsguard':>12} {'ratio':>8}")
for group in ["aes-256-gcm-seal-1KiB", "ecdsa-p256-sign", "hmac-sha256-1KiB"]:
    d, f = mean_ns(group, "aws-lc-rs/direct"), mean_ns(group, "fipsguard/boundary")
    print(f"{group:<24} {d/1000:>14.3f} us {f/1000:>9.3f} us {f/d:>8.3f}")
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
bare = runs["bare-aws-lc-rs"]["mean"]
print()
print(f"{'process start to first operation':<34} {'mean':>9} {'stddev':>9} {'vs bare':>8}")
for name, r in runs.items():
    print(f"{name:<34} {r['mean']*1000:>6.2f} ms {r['stddev']*1000:>6.2f} ms {r['mean']/bare:>8.2f}")
PY
