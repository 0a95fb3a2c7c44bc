#!/usr/bin/env bash
# Init-container benchmark, side by side with a baseline in one run:
#  (a) PODS (default 100) concurrent `sparkstage-init` processes, each fetching one staged bundle
#      of three jars (200 MiB in total) from one sparkstage-server into its own directories,
#      vs PODS concurrent curl processes downloading the same three files from nginx, each then
#      checked with sha256sum -c. Both write to the same disk; every file of every pod must verify.
#      Also with --cache-dir: the pods share one node-local cache, as on a single node.
#  (b) a re-run (a restarted pod) of sparkstage-init with 50 files already present and verified.
# Every figure is the median of BENCH_RUNS (3) runs; contenders alternate within a run.
# Usage: bench/init.sh [PODS]    (needs nginx and curl: scripts/test-deps.sh installs them)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
pods=${1:-100}
work=${BENCH_DIR:-$root/bench/out}/init
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server -p sparkstage-init
init_bin=$root/target/release/sparkstage-init
source "$root/bench/lib.sh"

# Three jars, 200 MiB in total.
mkdir -p "$work/files"
: > "$work/bundle.list"
for spec in app.jar:120 deps.jar:50 udf.jar:30; do
    name=${spec%%:*}; mib=${spec##*:}
    f=$work/files/$name
    [[ -f $f && $(stat -c %s "$f") -eq $((mib << 20)) ]] || head -c $((mib << 20)) /dev/urandom > "$f"
    echo "$name jar $f" >> "$work/bundle.list"
done
(cd "$work/files" && sha256sum app.jar deps.jar udf.jar > "$work/SHA256SUMS")
total=$(( (120 + 50 + 30) << 20 ))
cat "$work/files/"*.jar > /dev/null  # both origins serve from the page cache

start_server "--no-fsync"
stage_bundle "$work/token" "$work/bundle.list"
start_nginx "$work/files"
ng=http://127.0.0.1:$nginx_port

echo "sparkstage-init benchmark: $pods pods x 3 jars (200 MiB), $(nproc) cores, $(date -u +%F)"
echo

pods_dir=$work/pods
clean() { rm -rf "$pods_dir" "$work/cache"; sync; }
# Each contender: start PODS processes at once, wait for all, fail if any failed; prints seconds.
curl_pods() {
    local t0 t1 failed=0 started=()
    t0=$(now)
    for i in $(seq "$pods"); do
        (
            d=$pods_dir/$i; mkdir -p "$d"; cd "$d"
            curl -sf -o app.jar "$ng/app.jar" -o deps.jar "$ng/deps.jar" -o udf.jar "$ng/udf.jar"
            sha256sum --quiet -c "$work/SHA256SUMS"
        ) &
        started+=($!)
    done
    for job in "${started[@]}"; do wait "$job" || failed=$((failed + 1)); done
    t1=$(now)
    [[ $failed -eq 0 ]] || { echo "curl: $failed pods failed" >&2; exit 1; }
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}
init_pods() {  # $@ = extra flags
    local t0 t1 failed=0 started=()
    t0=$(now)
    for i in $(seq "$pods"); do
        "$init_bin" --server "$server_url" --bundle "$bundle_id" --token-file "$work/token" \
            --jars-dir "$pods_dir/$i/jars" --files-dir "$pods_dir/$i/files" "$@" \
            2>"$work/init-$i.log" &
        started+=($!)
    done
    for job in "${started[@]}"; do wait "$job" || failed=$((failed + 1)); done
    t1=$(now)
    [[ $failed -eq 0 ]] || { echo "sparkstage-init: $failed pods failed" >&2; cat "$work"/init-*.log | grep -v fetched | head >&2; exit 1; }
    # sparkstage-init verified every file; check the count independently.
    local n; n=$(find "$pods_dir" -name '*.jar' | wc -l)
    [[ $n -eq $((pods * 3)) ]] || { echo "only $n jars arrived" >&2; exit 1; }
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}

curl_runs=(); init_runs=(); cache_runs=()
for _ in $(seq "$runs"); do
    clean; curl_runs+=("$(curl_pods)")
    clean; init_runs+=("$(init_pods)")
    clean; cache_runs+=("$(init_pods --cache-dir "$work/cache")")
done
clean
curl_s=$(median "${curl_runs[@]}"); init_s=$(median "${init_runs[@]}"); cache_s=$(median "${cache_runs[@]}")
gib=$(python3 -c "print(f'{$pods * $total / 2**30:.1f}')")
echo "(a) $pods pods, $gib GiB in all         seconds   aggregate MiB/s   vs curl"
printf '    nginx + curl + sha256sum -c (baseline) %8s   %8.0f\n' "$curl_s" "$(python3 -c "print($pods*$total/2**20/$curl_s)")"
printf '    sparkstage-init (verify, fsync, rename) %7s   %8.0f          %sx\n' "$init_s" "$(python3 -c "print($pods*$total/2**20/$init_s)")" "$(ratio "$init_s" "$curl_s")"
printf '    sparkstage-init --cache-dir (one node)  %7s   %8.0f          %sx\n' "$cache_s" "$(python3 -c "print($pods*$total/2**20/$cache_s)")" "$(ratio "$cache_s" "$curl_s")"
echo

# (b) a restarted pod: 50 files already present and verified
mkdir -p "$work/many"
: > "$work/many.list"
for i in $(seq 50); do
    f=$work/many/lib-$i.jar
    [[ -f $f ]] || head -c $(( (i * 37 % 50 + 1) << 16 )) /dev/urandom > "$f"
    echo "lib-$i.jar jar $f" >> "$work/many.list"
done
stage_bundle "$work/token50" "$work/many.list"
rm -rf "$work/rerun"
rerun() {
    "$init_bin" --server "$server_url" --bundle "$bundle_id" --token-file "$work/token50" \
        --jars-dir "$work/rerun/jars" --files-dir "$work/rerun/files" 2>"$work/rerun.log"
}
rerun  # the first run fetches everything
grep -q "fetched 50 files" "$work/rerun.log" || { cat "$work/rerun.log" >&2; exit 1; }
rerun_runs=()
for _ in $(seq 10); do
    t0=$(now); rerun; t1=$(now)
    grep -q "fetched 0 files.*50 already present" "$work/rerun.log" || { cat "$work/rerun.log" >&2; exit 1; }
    rerun_runs+=("$(python3 -c "print(($t1 - $t0) * 1000)")")
done
true_runs=()
for _ in $(seq 10); do t0=$(now); /bin/true; t1=$(now); true_runs+=("$(python3 -c "print(($t1 - $t0) * 1000)")"); done
echo "(b) re-run with 50 files present         ms (median of 10)"
printf '    sparkstage-init, everything present  %8s   (wall clock, process start and the manifest request included)\n' "$(median "${rerun_runs[@]}")"
printf '    /bin/true, for scale                 %8s\n' "$(median "${true_runs[@]}")"
