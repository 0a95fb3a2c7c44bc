#!/usr/bin/env bash
# The fuzz smoke run of scripts/test.sh: builds every cargo fuzz target of fuzz/ (a debug build:
# quicker to compile, and a smoke run needs no speed) and runs each for FUZZ_SECONDS (default 10)
# on a copy of its committed corpus, so the run finds what a change broke in the parsers that
# read outside input without touching the work tree. A crash fails the run and leaves its input
# in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh [TARGET...]     (default: every target; needs cargo-fuzz, which
#                                          scripts/test-deps.sh installs into .tools/)
# A long run of one target: cargo fuzz run -s none TARGET -- -max_total_time=SECONDS
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-10}
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none --dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    cp -r "fuzz/corpus/$target/." "$work/$target/" 2>/dev/null || true
    if cargo fuzz run -s none --dev "$target" "$work/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$work/$target.log" 2>&1; then
        printf 'fuzz %s: %s\n' "$target" "$(grep -E '^Done' "$work/$target.log" | tail -n 1)"
        passed=$((passed + 1))
    else
        printf 'fuzz %s FAILED:\n' "$target"
        tail -n 40 "$work/$target.log"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
