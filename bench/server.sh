#!/usr/bin/env bash
# Staging-server benchmark, side by side with baselines on the same file and disk, in one run:
#  (a) PUT of a SIZE file (default 1 GiB) vs hashing it with Rust sha2 and with sha256sum;
#  (b) downloading it with 1 and 64 concurrent curl clients from sparkstage-server vs nginx;
#  (c) the server's peak RSS during (b) and during 16 concurrent uploads of the file.
# Usage: bench/server.sh [SIZE_MIB]     (needs nginx and curl: scripts/test-deps.sh installs them)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
size_mib=${1:-1024}
work=${BENCH_DIR:-$root/bench/out}
mkdir -p "$work"
work=$(cd "$work" && pwd)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p sparkstage-server --bin sparkstage-server --example sha2_hash
server_bin=$root/target/release/sparkstage-server
sha2_bin=$root/target/release/examples/sha2_hash

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/1048576/($3-$2):8.1f}')"; }  # MiB/s: bytes start end
peak_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

file=$work/blob.bin
if [[ ! -f $file || $(stat -c %s "$file") -ne $((size_mib << 20)) ]]; then
    head -c $((size_mib << 20)) /dev/urandom > "$file"
fi
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null  # warm the page cache: every contender reads it from memory

start_server() {  # $1 = extra flags; sets server_pid, server_url
    local port; port=$(free_port)
    rm -rf "$work/data"
    # shellcheck disable=SC2086
    "$server_bin" --listen 127.0.0.1:"$port" --storage "$work/data" $1 2>"$work/server.log" &
    server_pid=$!; pids+=("$server_pid")
    server_url=http://127.0.0.1:$port
    for _ in $(seq 100); do curl -sf "$server_url/healthz" >/dev/null && return; sleep 0.05; done
    echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

echo "sparkstage-server benchmark: $size_mib MiB file, $(nproc) cores, $(date -u +%F)"
echo

# (a) hashing baselines and upload
read -r digest _ _ < <("$sha2_bin" "$file")
t0=$(now); "$sha2_bin" "$file" >/dev/null; t1=$(now); sha2_rate=$(rate "$bytes" "$t0" "$t1")
t0=$(now); sha256sum "$file" >/dev/null; t1=$(now); sum_rate=$(rate "$bytes" "$t0" "$t1")
upload() {  # $1 = flags; prints MiB/s of one PUT
    start_server "$1"
    local t0 t1 code
    t0=$(now)
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -T "$file" "$server_url/v1/blobs/$digest")
    t1=$(now)
    [[ $code == 201 ]] || { echo "upload failed: $code" >&2; exit 1; }
    rate "$bytes" "$t0" "$t1"
}
put_rate=$(upload "")
stop_server
put_nofsync_rate=$(upload "--no-fsync")
stop_server
echo "(a) upload                                 MiB/s    vs sha2"
printf '    Rust sha2 hash (baseline)            %8s\n' "$sha2_rate"
printf '    sha256sum                            %8s\n' "$sum_rate"
printf '    PUT, fsync (default)                 %8s    %.2fx\n' "$put_rate" "$(python3 -c "print($put_rate/$sha2_rate)")"
printf '    PUT, --no-fsync                      %8s    %.2fx\n' "$put_nofsync_rate" "$(python3 -c "print($put_nofsync_rate/$sha2_rate)")"
echo

# (b) downloads vs nginx
nginx_port=$(free_port)
mkdir -p "$work/nginx/www" "$work/nginx/logs"
ln -f "$file" "$work/nginx/www/blob.bin" 2>/dev/null || cp "$file" "$work/nginx/www/blob.bin"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
user root;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  server { listen 127.0.0.1:$nginx_port; root $work/nginx/www; }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
sleep 0.5

start_server "--no-fsync"
curl -sf -X PUT -T "$file" "$server_url/v1/blobs/$digest" >/dev/null
bundle=$(curl -sf -H 'content-type: application/json' "$server_url/v1/bundles" \
    -d "{\"entries\":[{\"name\":\"blob.bin\",\"digest\":\"$digest\",\"size\":$bytes,\"kind\":\"file\"}]}")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$bundle")
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$bundle")
echo 5 > "/proc/$server_pid/clear_refs"  # reset the peak-RSS mark: measure the downloads only

fetch() {  # $1 = clients, $2.. = curl args; prints aggregate MiB/s
    local n=$1; shift
    local t0 t1 i
    t0=$(now)
    for i in $(seq "$n"); do curl -sf -o /dev/null "$@" & done
    for p in $(jobs -p); do
        [[ " ${pids[*]} " == *" $p "* ]] || wait "$p"
    done
    t1=$(now)
    rate "$((bytes * n))" "$t0" "$t1"
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
for i in $(seq 16); do curl -s -o /dev/null -X PUT -T "$file" "$server_url/v1/blobs/$digest" & done
for p in $(jobs -p); do [[ " ${pids[*]} " == *" $p "* ]] || wait "$p"; done
t1=$(now)
upload_peak=$(peak_mib "$server_pid")
up16=$(rate "$((bytes * 16))" "$t0" "$t1")
stop_server
echo "(c) server peak RSS                        MiB"
printf '    during (b) downloads                 %8s\n' "$download_peak"
printf '    during 16 concurrent uploads         %8s   (%s MiB/s aggregate, fsync on)\n' "$upload_peak" "$up16"
