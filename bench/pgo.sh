#!/usr/bin/env bash
# What profile-guided optimization does to `fipsguard serve` and to the
# baselines it is measured against. Builds the server and the echo server
# instrumented, trains both on the workload of `bench/serve.sh` (one short
# round), builds them again from the merged profile, and runs
# `bench/serve.sh` on that build: the server and its baselines are built
# the same way, so their ratios stay fair. Only Rust code is affected:
# AWS-LC (the validated module, C) is built by its own cmake, as always.
# Needs llvm-profdata of the LLVM that rustc uses (Debian: llvm-22 for
# rustc 1.95) and what bench/serve.sh needs. Builds go to target/pgo-*;
# RUSTFLAGS of your own are replaced for them.
#
#   bench/pgo.sh [SECONDS] [CONNECTIONS] [ROUNDS]   as bench/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(command -v "llvm-profdata-$llvm") ||
  { echo "needs llvm-profdata-$llvm, rustc's LLVM (apt-get install llvm-$llvm)" >&2; exit 2; }
# A fixed place: RUSTFLAGS name it, and the same flags let a second run
# reuse the builds.
profiles=$PWD/target/pgo-profiles
rm -rf "$profiles"

build() {  # DIR RUSTFLAGS: both servers, with RUSTFLAGS for the target only
  # (--target keeps them from build scripts and proc macros).
  for what in "--bin fipsguard -p fipsguard" "-p fipsguard-server --example echo"; do
    # shellcheck disable=SC2086
    RUSTFLAGS=$2 cargo build --release --locked -q --target "$host" --target-dir "target/$1" $what
  done
}

build pgo-generate "-Cprofile-generate=$profiles/raw"
BENCH_BIN="target/pgo-generate/$host/release" bench/serve.sh 5 64 1 >/dev/null
"$profdata" merge -o "$profiles/merged.profdata" "$profiles/raw"
build pgo-use "-Cprofile-use=$profiles/merged.profdata"
BENCH_BIN="target/pgo-use/$host/release" bench/serve.sh "$@"
