# Shared by the bench/ scripts: sourced, not run. Expects $root (the repository) and $work (a
# scratch directory) to be set, and `set -euo pipefail`.

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/1048576/($3-$2):8.1f}')"; }  # MiB/s: bytes start end
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):8.2f}")' "$@"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
peak_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
runs=${BENCH_RUNS:-3}  # every figure is the median of this many runs

start_server() {  # $1 = extra flags; sets server_pid, server_url; storage in $work/data
    local port; port=$(free_port)
    rm -rf "$work/data"
    # shellcheck disable=SC2086
    "$root/target/release/sparkstage-server" --listen 127.0.0.1:"$port" --storage "$work/data" $1 \
        2>"$work/server.log" &
    server_pid=$!; pids+=("$server_pid")
    server_url=http://127.0.0.1:$port
    for _ in $(seq 100); do curl -sf "$server_url/healthz" >/dev/null && return; sleep 0.05; done
    echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

start_nginx() {  # $1 = the directory to serve, $2 = an access log of body bytes sent (optional); sets nginx_port
    # (nginx_addr and nginx_prefix, when set, choose the address and run it under a prefix such
    # as `ip netns exec NAME`)
    nginx_port=$(free_port)
    mkdir -p "$work/nginx/logs"
    local access="access_log off;"
    [[ -n ${2:-} ]] && access="log_format bytes '\$body_bytes_sent'; access_log $2 bytes;"
    cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
user root;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  $access
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  server { listen ${nginx_addr:-127.0.0.1}:$nginx_port; root $1; }
}
CONF
    # shellcheck disable=SC2086
    ${nginx_prefix:-} "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
    pids+=($!)
    for _ in $(seq 100); do curl -s -o /dev/null "http://${nginx_addr:-127.0.0.1}:$nginx_port/" && return; sleep 0.05; done
    echo "nginx did not start" >&2; exit 1
}

# Uploads files ($2 = a file of "name kind path" lines) and creates a bundle on $server_url;
# writes the token to $1 and sets bundle_id.
stage_bundle() {
    local token_file=$1 list=$2 entries="" name kind path digest size
    while read -r name kind path; do
        digest=sha256:$(sha256sum "$path" | cut -d' ' -f1)
        size=$(stat -c %s "$path")
        curl -sf -X PUT -T "$path" "$server_url/v1/blobs/$digest" >/dev/null
        entries+="${entries:+,}{\"name\":\"$name\",\"digest\":\"$digest\",\"size\":$size,\"kind\":\"$kind\"}"
    done < "$list"
    local answer
    answer=$(curl -sf -H 'content-type: application/json' "$server_url/v1/bundles" -d "{\"entries\":[$entries]}")
    bundle_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$answer")
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$answer" > "$token_file"
}
