#!/usr/bin/env bash
# `fipsguard check binary` over a whole system tree: every regular file is
# opened, every ELF file read whole, parsed and searched. Prints files/s
# (files walked, and ELF files judged) and MB/s of ELF bytes read, for a run
# with the page cache warm (a first run warms it), and the verdict counts.
#
#   bench/check-binary.sh [PATH...]     (default: /usr/bin /usr/lib)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(/usr/bin /usr/lib)
cargo build --release --locked -q -p fipsguard --bin fipsguard
fg=$PWD/target/release/fipsguard
out=$(mktemp)
trap 'rm -f "$out" "$out.list"' EXIT

"$fg" check binary --format json "${paths[@]}" >/dev/null || true
start=$(date +%s.%N)
"$fg" check binary --format json "${paths[@]}" >"$out" || true
end=$(date +%s.%N)

walked=$(find "${paths[@]}" -type f 2>/dev/null | wc -l)
python3 - "$out" "$start" "$end" "$walked" "${paths[@]}" <<'PY'
import collections, json, os, sys
out, start, end, walked = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
reports = json.load(open(out))["reports"]
secs = end - start
elf_bytes = sum(os.path.getsize(r["subject"]) for r in reports if os.path.isfile(r["subject"]))
verdicts = collections.Counter(r["verdict"] for r in reports)
print(f"scanned: {' '.join(sys.argv[5:])}")
print(f"{walked} regular files walked, {len(reports)} ELF reports, {elf_bytes / 1e6:.0f} MB of ELF read in {secs:.2f} s")
print(f"{walked / secs:.0f} files/s walked, {len(reports) / secs:.0f} ELF files/s, {elf_bytes / 1e6 / secs:.0f} MB/s")
print("verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
with open(out + ".list", "wb") as paths:
    paths.write(b"\0".join(r["subject"].encode() for r in reports if os.path.isfile(r["subject"])))
PY

# The floor: only reading the same ELF files, with cat (warm cache, one
# process). A scan cannot be faster than reading what it judges.
cat_start=$(date +%s.%N)
xargs -0 cat <"$out.list" >/dev/null
cat_end=$(date +%s.%N)
python3 -c "
scan, read = $end - $start, $cat_end - $cat_start
print(f'reading the same ELF bytes with cat: {read:.2f} s; the scan takes {scan / read:.2f}x the time of reading alone')"
