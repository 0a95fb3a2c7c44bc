#!/usr/bin/env bash
# Staging-server benchmark, side by side with baselines on the same file and disk, in one run:
#  (a) PUT of a SIZE file (default 1 GiB) vs hashing it with Rust sha2 and with sha256sum;
#  (b) downloading it with 1 and 64 concurrent curl clients from sparkstage-server vs nginx;
#  (c) the server's peak RSS during (b) and during 16 concurrent uploads of the file.
# Every figure is the median of BENCH_RUNS (3) runs; nginx and sparkstage alternate per figure.
# Usage: bench/server.sh [SIZE_MIB]     (needs nginx and curl: scripts/test-deps.sh installs them)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
size_mib=${1:-1024}
work=${BENCH_DIR:-$root/bench/out}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server --bin sparkstage-server --example sha2_hash
sha2_bin=$root/target/release/examples/sha2_hash

source "$root/bench/lib.sh"

file=$work/blob.bin
if [[ ! -f $file || $(stat -c %s "$file") -ne $((size_mib << 20)) ]]; then
    head -c $((size_mib << 20)) /dev/urandom > "$file"
fi
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null  # warm the page cache: every contender reads it from memory

echo "sparkstage-server benchmark: $size_mib MiB file, $(nproc) cores, $(date -u +%F)"
echo

# (a) hashing baselines and upload
read -r digest _ _ < <("$sha2_bin" "$file")
sha2_runs=(); sum_runs=(); write_runs=()
for _ in $(seq "$runs"); do
    t0=$(now); dd if="$file" of="$work/write-test" bs=1M conv=fsync status=none; t1=$(now)
    write_runs+=("$(rate "$bytes" "$t0" "$t1")"); rm -f "$work/write-test"
    t0=$(now); "$sha2_bin" "$file" >/dev/null; t1=$(now); sha2_runs+=("$(rate "$bytes" "$t0" "$t1")")
    t0=$(now); sha256sum "$file" >/dev/null; t1=$(now); sum_runs+=("$(rate "$bytes" "$t0" "$t1")")
done
sha2_rate=$(median "${sha2_runs[@]}"); sum_rate=$(median "${sum_runs[@]}")
write_rate=$(median "${write_runs[@]}")
# Hashing it once and writing it once, one after the other: the floor of a verified, durable store.
hash_write_rate=$(python3 -c "print(f'{1/(1/$sha2_rate + 1/$write_rate):8.1f}')")
upload() {  # $1 = flags; sets up_rate, the median MiB/s of one PUT into an empty store
    local t0 t1 code rates=()
    for _ in $(seq "$runs"); do
        start_server "$1"
        t0=$(now)
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -T "$file" "$server_url/v1/blobs/$digest")
        t1=$(now)
        [[ $code == 201 ]] || { echo "upload failed: $code" >&2; exit 1; }
        rates+=("$(rate "$bytes" "$t0" "$t1")")
        stop_server
    done
    up_rate=$(median "${rates[@]}")
}
upload ""; put_rate=$up_rate
upload "--no-fsync"; put_nofsync_rate=$up_rate
echo "(a) upload                                 MiB/s    vs sha2"
printf '    Rust sha2 hash (baseline)            %8s\n' "$sha2_rate"
printf '    sha256sum                            %8s\n' "$sum_rate"
printf '    dd conv=fsync (write it once)        %8s\n' "$write_rate"
printf '    sha2 then dd (hash once, write once) %8s    %.2fx\n' "$hash_write_rate" "$(python3 -c "print($hash_write_rate/$sha2_rate)")"
printf '    PUT, fsync (default)                 %8s    %.2fx\n' "$put_rate" "$(python3 -c "print($put_rate/$sha2_rate)")"
printf '    PUT, --no-fsync                      %8s    %.2fx\n' "$put_nofsync_rate" "$(python3 -c "print($put_nofsync_rate/$sha2_rate)")"
echo

# (b) downloads vs nginx
mkdir -p "$work/nginx/www"
ln -f "$file" "$work/nginx/www/blob.bin" 2>/dev/null || cp "$file" "$work/nginx/www/blob.bin"
start_nginx "$work/nginx/www"

start_server "--no-fsync"
curl -sf -X PUT -T "$file" "$server_url/v1/blobs/$digest" >/dev/null
bundle=$(curl -sf -H 'content-type: application/json' "$server_url/v1/bundles" \
    -d "{\"entries\":[{\"name\":\"blob.bin\",\"digest\":\"$digest\",\"size\":$bytes,\"kind\":\"file\"}]}")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$bundle")
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$bundle")
echo 5 > "/proc/$server_pid/clear_refs"  # reset the peak-RSS mark: measure the downloads only

fetch() {  # $1 = clients, $2.. = curl args; prints the median aggregate MiB/s
    local n=$1; shift
    local t0 t1 rates=()
    for _ in $(seq "$runs"); do
        t0=$(now)
        ( for _ in $(seq "$n"); do curl -sf -o /dev/null "$@" & done; wait )
        t1=$(now)
        rates+=("$(rate "$((bytes * n))" "$t0" "$t1")")
    done
    median "${rates[@]}"
}
ss_url="$server_url/v1/bundles/$id/blobs/$digest"
ng1=$(fetch 1 "http://127.0.0.1:$nginx_port/blob.bin")
ss1=$(fetch 1 -H "Authorization: Bearer $token" "$ss_url")
ng64=$(fetch 64 "http://127.0.0.1:$nginx_port/blob.bin")
ss64=$(fetch 64 -H "Authorization: Bearer $token" "$ss_url")
download_peak=$(peak_mib "$server_pid")
echo "(b) download, aggregate MiB/s             nginx   sparkstage   ratio"
printf '    1 client                             %8s   %8s     %.2fx\n' "$ng1" "$ss1" "$(python3 -c "print($ss1/$ng1)")"
printf '    64 concurrent clients                %8s   %8s     %.2fx\n' "$ng64" "$ss64" "$(python3 -c "print($ss64/$ng64)")"
stop_server
echo

# (c) peak RSS during 16 concurrent uploads of the file
start_server ""
t0=$(now)
( for _ in $(seq 16); do curl -s -o /dev/null -X PUT -T "$file" "$server_url/v1/blobs/$digest" & done; wait )
t1=$(now)
upload_peak=$(peak_mib "$server_pid")
up16=$(rate "$((bytes * 16))" "$t0" "$t1")
stop_server
echo "(c) server peak RSS                        MiB"
printf '    during (b) downloads                 %8s\n' "$download_peak"
printf '    during 16 concurrent uploads         %8s   (%s MiB/s aggregate, fsync on)\n' "$upload_peak" "$up16"
