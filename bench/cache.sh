#!/usr/bin/env bash
# Pull-through cache benchmark (issue 13), side by side in one run: PODS (default
# 50) concurrent `sparkstage-init` processes each get one remote jar of MIB MiB (default 200)
#  (a) directly from the origin (nginx; the jar as a positional source), vs
#  (b) through sparkstage-server: a bundle with the jar as a source entry, created just before
#      the pods start, so the server's one fetch is inside the measured time.
# Reported: wall time, bytes the origin sent (nginx's access log, $body_bytes_sent) and the
# server's peak RSS. Every pod's file is verified by sparkstage-init (the digest is given).
# Disk: PODS x MIB MiB per contender, removed between them.
# With ORIGIN_MBIT=N (root, iproute2), the origin is an nginx in a network namespace behind a
# veth whose outgoing traffic a token bucket (tc tbf) shapes to N Mbit/s: a shared link to an origin
# outside the cluster. Without it the origin is nginx on loopback, as fast as a disk.
# Usage: [ORIGIN_MBIT=N] bench/cache.sh [PODS] [MIB]    (needs nginx and curl: scripts/test-deps.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
pods=${1:-50}
mib=${2:-200}
# Each pod's deadline (sparkstage-init --timeout). Its default, 5m, is too short for 200 pods
# with 200 MiB each from one origin over 800 Mbit/s (7 minutes of transfer at best).
pod_timeout=${POD_TIMEOUT:-1h}
work=${BENCH_DIR:-$root/bench/out}/cache
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server -p sparkstage-init
init_bin=$root/target/release/sparkstage-init
source "$root/bench/lib.sh"

mkdir -p "$work/origin"
jar=$work/origin/udf.jar
[[ -f $jar && $(stat -c %s "$jar") -eq $((mib << 20)) ]] || head -c $((mib << 20)) /dev/urandom > "$jar"
digest=$(sha256sum "$jar" | cut -d' ' -f1)
cat "$jar" > /dev/null
: > "$work/access.log"
link="loopback"
if [[ -n ${ORIGIN_MBIT:-} ]]; then
    ns=sscache$$
    ip netns add "$ns"
    trap 'cleanup; ip netns del "$ns" 2>/dev/null || true' EXIT
    ip link add "${ns}a" type veth peer name "${ns}b"
    ip link set "${ns}b" netns "$ns"
    ip addr add 10.211.0.1/24 dev "${ns}a"
    ip link set "${ns}a" up
    ip netns exec "$ns" ip addr add 10.211.0.2/24 dev "${ns}b"
    ip netns exec "$ns" ip link set "${ns}b" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" tc qdisc add dev "${ns}b" root tbf rate "${ORIGIN_MBIT}mbit" burst 256kb latency 100ms
    nginx_addr=10.211.0.2
    nginx_prefix="ip netns exec $ns"
    link="a ${ORIGIN_MBIT} Mbit/s link"
fi
start_nginx "$work/origin" "$work/access.log"
origin=http://${nginx_addr:-127.0.0.1}:$nginx_port/udf.jar
start_server "--no-fsync"
pods_dir=$work/pods
origin_bytes() { awk '{s += $1} END {printf "%.0f\n", s}' "$work/access.log"; }
run_pods() {  # $@ = the arguments of every pod but its directories; prints seconds
    local t0 t1 failed=0 started=()
    t0=$(now)
    for i in $(seq "$pods"); do
        "$init_bin" "$@" --jars-dir "$pods_dir/$i/jars" --files-dir "$pods_dir/$i/files" \
            --timeout "$pod_timeout" 2>"$work/init-$i.log" &
        started+=($!)
    done
    for job in "${started[@]}"; do wait "$job" || failed=$((failed + 1)); done
    t1=$(now)
    [[ $failed -eq 0 ]] || { echo "$failed pods failed" >&2; head -3 "$work"/init-*.log >&2; exit 1; }
    local n; n=$(find "$pods_dir" -name udf.jar | wc -l)
    [[ $n -eq $pods ]] || { echo "only $n jars arrived" >&2; exit 1; }
    rm -rf "$pods_dir"
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}

echo "pull-through cache benchmark: $pods pods x one $mib MiB jar, origin over $link, $(nproc) cores, $(date -u +%F)"
before=$(origin_bytes)
direct=$(run_pods "$origin#sha256=$digest")
direct_bytes=$(( $(origin_bytes) - before ))

before=$(origin_bytes)
t0=$(now)
answer=$(curl -sf -H 'content-type: application/json' "$server_url/v1/bundles" \
    -d "{\"entries\":[],\"sources\":[{\"kind\":\"jar\",\"source\":\"$origin\",\"digest\":\"sha256:$digest\"}]}")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$answer")
python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$answer" > "$work/token"
run_pods --server "$server_url" --bundle "$id" --token-file "$work/token" > /dev/null
# From the bundle's creation: the server's fetch is inside.
through=$(python3 -c "print(f'{$(now) - $t0:.2f}')")
through_bytes=$(( $(origin_bytes) - before ))

printf '\n%-44s %10s %14s %8s\n' "" "wall_s" "origin_MiB" "x_size"
printf '%-44s %10s %14.1f %8.2f\n' "(a) each pod from the origin" "$direct" \
    "$(python3 -c "print($direct_bytes/1048576)")" "$(python3 -c "print($direct_bytes/($mib<<20))")"
printf '%-44s %10s %14.1f %8.2f\n' "(b) through sparkstage (one fetch)" "$through" \
    "$(python3 -c "print($through_bytes/1048576)")" "$(python3 -c "print($through_bytes/($mib<<20))")"
echo "sparkstage-server peak RSS: $(peak_mib "$server_pid") MiB"
