#!/usr/bin/env bash
# Resolution benchmark, side by side in one run: the same coordinates from the same repository
# (Debian's real /usr/share/maven-repo, served on loopback by maven/fixtures/serve.py), resolved
#   - by the real `spark-submit --packages` (pyspark's Ivy 2.5.3): cold (a fresh
#     spark.jars.ivy) and warm (the same spark.jars.ivy again), and
#   - by `sparkstage resolve` (spark mode, in-process): cold (an empty cache) and warm;
#   - through the server: cold (`POST /v1/resolve` on a fresh server) and warm (the kept answer);
# first with the repository on loopback, then behind bench/delay_proxy.py, which adds 20 ms to
# every request (Maven Central is far from a cluster). Every run must give the same jar set as
# spark-submit's (the names Spark gives the jars, compared as sets).
# spark-submit runs as maven-golden.sh runs it: fresh HOME, Central and spark-packages refused at
# once by a closed https proxy port (no Internet here), a primary that exits at once; its time
# includes the JVM start (~2.5 s), which is what a user or a driver pod pays.
# Every figure is the median of BENCH_RUNS (3) runs.
# Usage: bench/resolve.sh [COORDINATES]    (default: BENCH_COORDS or the list below)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=${BENCH_DIR:-$root/bench/out}/resolve
rm -rf "$work"; mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server -p sparkstage
client=$root/target/release/sparkstage
source "$root/bench/lib.sh"
# shellcheck disable=SC1091
source "$root/.tools/env.sh"
coords=${1:-${BENCH_COORDS:-org.apache.maven:maven-core:3.8.7,org.eclipse.jetty:jetty-server:9.4.57.v20241219,com.fasterxml.jackson.core:jackson-databind:2.14.0,org.apache.httpcomponents:httpclient:4.5.14,com.google.guava:guava:31.1-jre}}

python3 maven/fixtures/serve.py /usr/share/maven-repo > "$work/repo.port" 2>"$work/repo.log" &
pids+=($!)
for _ in $(seq 100); do grep -q PORT "$work/repo.port" 2>/dev/null && break; sleep 0.05; done
repo_url=http://127.0.0.1:$(awk '/PORT/ {print $2}' "$work/repo.port")/
python3 bench/delay_proxy.py --delay-ms 20 --upstream "$repo_url" > "$work/proxy.port" &
pids+=($!)
for _ in $(seq 100); do grep -q PORT "$work/proxy.port" 2>/dev/null && break; sleep 0.05; done
proxy_url=http://127.0.0.1:$(awk '/PORT/ {print $2}' "$work/proxy.port")/

echo 'print("resolved")' > "$work/noop.py"
spark_env() {  # pyspark's spark-submit finds SPARK_HOME through the venv's python
    env PATH="$(dirname "$SPARKSTAGE_TEST_SPARK_SUBMIT"):$PATH" HOME="$work/home" \
        SPARK_CONF_DIR="$work/conf" SPARK_LOCAL_IP=127.0.0.1 \
        SPARK_SUBMIT_OPTS="-Duser.home=$work/home -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9" \
        "$@"
}
mkdir -p "$work/conf"

spark_run() {  # $1 = repo url, $2 = ivy dir; prints seconds; jar names in $work/spark.jars
    rm -rf "$work/home"; mkdir -p "$work/home"
    local t0 t1
    t0=$(now)
    spark_env "$SPARKSTAGE_TEST_SPARK_SUBMIT" --master 'local[1]' --packages "$coords" \
        --repositories "$1" --conf spark.jars.ivy="$2" "$work/noop.py" > "$work/spark.out" 2>&1 \
        || { cat "$work/spark.out" >&2; exit 1; }
    t1=$(now)
    (cd "$2/jars" && ls -- *.jar) | LC_ALL=C sort > "$work/spark.jars"
    python3 -c "print($t1 - $t0)"
}

ours() {  # $1 = repo url, $2 = cache dir; prints seconds; jar names in $work/ours.jars
    local t0 t1
    t0=$(now)
    SPARKSTAGE_MAVEN_REPOSITORIES=$1 "$client" resolve --cache-dir "$2" --format files "$coords" \
        > "$work/ours.jars" 2> "$work/ours.err" || { cat "$work/ours.err" >&2; exit 1; }
    t1=$(now)
    python3 -c "print($t1 - $t0)"
}

via_server() {  # $1 = "cold" or "warm"; prints seconds; jar names in $work/ours.jars
    local t0 t1
    t0=$(now)
    "$client" --server "$server_url" resolve --format files "$coords" > "$work/ours.jars" \
        2> "$work/ours.err" || { cat "$work/ours.err" >&2; exit 1; }
    t1=$(now)
    python3 -c "print($t1 - $t0)"
}

same_set() {
    cmp -s "$work/spark.jars" "$work/ours.jars" || {
        echo "jar sets differ ($1):" >&2; diff "$work/spark.jars" "$work/ours.jars" >&2; exit 1; }
}

printf '%s\n' "coordinates: $coords"
for setting in loopback proxy; do
    url=$repo_url; [[ $setting == proxy ]] && url=$proxy_url
    sc=(); sw=(); oc=(); ow=(); vc=(); vw=()
    for i in $(seq "$runs"); do
        rm -rf "$work/ivy-$i" "$work/cache-$i"
        sc+=("$(spark_run "$url" "$work/ivy-$i")")
        sw+=("$(spark_run "$url" "$work/ivy-$i")")
        oc+=("$(ours "$url" "$work/cache-$i")"); same_set "sparkstage cold"
        ow+=("$(ours "$url" "$work/cache-$i")"); same_set "sparkstage warm"
        rm -rf "$work/server-cache"
        start_server "--maven-repository $url --maven-cache $work/server-cache"
        vc+=("$(via_server cold)"); same_set "server cold"
        vw+=("$(via_server warm)"); same_set "server warm"
        stop_server
    done
    n=$(wc -l < "$work/spark.jars")
    s_c=$(median "${sc[@]}"); s_w=$(median "${sw[@]}")
    printf '\n%s (%s jars)%s\n' "$setting" "$n" "$([[ $setting == proxy ]] && echo ', +20 ms per request')"
    printf '  %-44s %8s s\n' "spark-submit --packages, cold" "$s_c"
    printf '  %-44s %8s s\n' "spark-submit --packages, warm (same ivy dir)" "$s_w"
    for row in "sparkstage resolve, cold:oc" "sparkstage resolve, warm:ow" \
               "POST /v1/resolve (server), cold:vc" "POST /v1/resolve (server), warm:vw"; do
        label=${row%%:*}; var=${row##*:}
        declare -n values=$var
        m=$(median "${values[@]}")
        if [[ $label == *cold* ]]; then base=$s_c; else base=$s_w; fi
        printf '  %-44s %8s s  %6sx faster than spark-submit\n' "$label" "$m" "$(ratio "$base" "$m")"
    done
done
