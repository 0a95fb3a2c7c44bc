#!/usr/bin/env bash
# The policy scan of scripts/test.sh: renders every overlay of deploy/ with `kubectl kustomize`
# and runs checkov (pinned, installed by scripts/test-deps.sh into .tools/checkov) over the
# result, with deploy/.checkov.yaml (the skipped checks, each justified there). The structural
# checks of the rendered objects are Rust tests (tests/tests/deploy.rs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
checkov=${CHECKOV:-$root/.tools/checkov/bin/checkov}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for overlay in deploy/overlays/*/; do
    name=$(basename "$overlay")
    kubectl kustomize "$overlay" > "$work/$name.yaml"
done
"$checkov" --config-file deploy/.checkov.yaml --directory "$work"
echo "deploy-check: checkov passed over $(ls "$work" | wc -l) rendered overlays"
