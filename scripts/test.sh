#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/test-deps.sh: moto, fake-gcs-server,
# azurite, nginx into .tools/ and the system), builds the binaries, checks formatting and lints,
# and runs every test of the workspace against real peers on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/test-deps.sh
# shellcheck disable=SC1091
source .tools/env.sh

cargo fmt --all -- --check
cargo build --workspace --bins
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace "$@"
bash scripts/maven-golden.sh --check
