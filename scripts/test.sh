#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/test-deps.sh: moto, fake-gcs-server,
# azurite, nginx into .tools/ and the system), builds the binaries, checks formatting and lints,
# and runs every test of the workspace against real peers on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# A one-shot build needs no incremental caches (they double the workspace crates' share of
# target/); a developer's own `cargo` runs keep theirs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# A clean build of the workspace and its tests takes about 1.7 GiB of target/, the test peers about
# 1.2 GiB (.tools/, Debian's Java libraries): say so up front rather than fail on a full disk.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if ((free_kib < 4 * 1024 * 1024)); then
    printf 'test: only %s MiB free on %s; the build and the test peers need about 3 GiB\n' \
        "$((free_kib / 1024))" "$(df -P . | awk 'NR == 2 { print $6 }')" >&2
fi

bash scripts/test-deps.sh
# shellcheck disable=SC1091
source .tools/env.sh

cargo fmt --all -- --check
cargo build --workspace --bins
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace "$@"
bash scripts/maven-golden.sh --check
bash scripts/deploy-check.sh
bash scripts/fuzz-smoke.sh
