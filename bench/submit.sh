#!/usr/bin/env bash
# Submit-hook benchmark, side by side with a baseline in one run, on one server and one disk:
#  (a) the first submit of an application with 500 MiB of jars (20 x 25 MiB): `sparkstage submit
#      --dry-run` (hash, one missing-blobs call, uploads, bundle, templates) vs sha256sum of the
#      files then `curl -T` of each (4 at a time) to the same API, then the bundle with curl;
#  (b) re-submitting the unchanged application: with the (path, size, mtime) digest cache, and
#      without it (everything hashed again, nothing uploaded); time and bytes uploaded.
# Every figure is the median of BENCH_RUNS (3) runs; each first submit gets an empty server.
# Usage: bench/submit.sh       (needs curl; the server and client are built in release mode)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=${BENCH_DIR:-$root/bench/out}/submit
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server -p sparkstage
client=$root/target/release/sparkstage
source "$root/bench/lib.sh"

app=$work/app
mkdir -p "$app"
jars=()
for i in $(seq -w 1 20); do
    f=$app/lib-$i.jar
    [[ -f $f && $(stat -c %s "$f") -eq $((25 << 20)) ]] || head -c $((25 << 20)) /dev/urandom > "$f"
    jars+=("$f")
done
touch -d '1 hour ago' "${jars[@]}"  # an application built a while ago, as on a re-submit
cat "${jars[@]}" > /dev/null
jar_list=$(IFS=,; echo "${jars[*]}")
total=$((20 * (25 << 20)))

submit() {  # $1 = digest cache file; prints the seconds, leaves "N uploaded (B)" in uploaded.txt
    local t0 t1
    t0=$(now)
    SPARKSTAGE_DIGEST_CACHE=$1 "$client" submit --server "$server_url" \
        --templates-dir "$work/templates" --dry-run -- spark-submit \
        --master k8s://https://kubernetes.default.svc --deploy-mode cluster --class Main \
        --jars "$jar_list" "${jars[0]}" > "$work/report.txt" 2> "$work/submit.log"
    t1=$(now)
    grep -o '[0-9]* uploaded ([^)]*)' "$work/submit.log" > "$work/uploaded.txt"
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}
baseline() {  # sha256sum, then curl -T 4 at a time, then the bundle
    local t0 t1
    t0=$(now)
    sha256sum "${jars[@]}" > "$work/sums"
    awk '{print $1, $2}' "$work/sums" | xargs -P 4 -n 2 sh -c \
        'curl -sf -o /dev/null -X PUT -T "$1" "'"$server_url"'/v1/blobs/sha256:$0"'
    entries=$(awk '{n=split($2,p,"/"); printf "%s{\"name\":\"%s\",\"digest\":\"sha256:%s\",\"size\":'$((25 << 20))',\"kind\":\"jar\"}", (NR>1?",":""), p[n], $1}' "$work/sums")
    curl -sf -o /dev/null -H 'content-type: application/json' "$server_url/v1/bundles" -d "{\"entries\":[$entries]}"
    t1=$(now)
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

first_runs=(); base_runs=(); warm_runs=(); cold_runs=()
for _ in $(seq "$runs"); do
    start_server ""; base_runs+=("$(baseline)"); stop_server
    start_server ""
    rm -f "$work/digests.json"
    first_runs+=("$(submit "$work/digests.json")")
    warm_runs+=("$(submit "$work/digests.json")")
    warm_uploaded=$(cat "$work/uploaded.txt")
    rm -f "$work/cold.json"
    cold_runs+=("$(submit "$work/cold.json")")
    cold_uploaded=$(cat "$work/uploaded.txt")
    stop_server
done

echo "sparkstage submit benchmark: 20 jars, 500 MiB, $(nproc) cores, $(date -u +%F)"
echo
echo "(a) first submit                              seconds    MiB/s   vs baseline"
base=$(median "${base_runs[@]}"); first=$(median "${first_runs[@]}")
printf '    sha256sum + curl -T x4 + bundle (baseline) %8s %8.0f\n' "$base" "$(python3 -c "print($total/2**20/$base)")"
printf '    sparkstage submit --dry-run               %8s %8.0f   %sx\n' "$first" "$(python3 -c "print($total/2**20/$first)")" "$(ratio "$first" "$base")"
echo
echo "(b) unchanged re-submit                       seconds   uploaded"
printf '    digest cache warm                         %8s   %s\n' "$(median "${warm_runs[@]}")" "$warm_uploaded"
printf '    digest cache cold (hash all again)        %8s   %s\n' "$(median "${cold_runs[@]}")" "$cold_uploaded"
