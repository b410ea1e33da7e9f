#!/usr/bin/env bash
# Encrypt latency with 1,000 and with 1,000,000 keys in SQLite, cold and warm
# cache (crates/fipsguard-store/benches/scale.rs). Creating the million keys
# takes a few minutes; the databases go to a temporary directory.
#
#   bench/scale.sh [KEYS...]     default: 1000 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for keys in "${@:-1000 1000000}"; do
  for n in $keys; do
    cargo bench --locked -q -p fipsguard-store --bench scale -- "$n" "$work/keys-$n.db"
    echo "database: $(du -h "$work/keys-$n.db" | cut -f1) for $n keys"
  done
done
