#!/usr/bin/env bash
# Admission webhook latency, side by side with a baseline in one run: COUNT (default 10000)
# AdmissionReviews of a recorded Spark driver pod (tests/fixtures/k8s/admission/
# spark-driver-template.review.json, as a real kube-apiserver sent it, asking for a staged
# bundle) posted over HTTPS on kept-alive connections, as the API server sends them, with 1 and
# with 16 at once (server/examples/admission_load.rs); the answers are checked (allowed).
#  (a) sparkstage-server --webhook-listen: reads the review, checks the bundle, writes the JSON
#      patch (a full mutation);
#  (b) baseline, the transport's floor: nginx over TLS with the same certificate, answering every
#      POST with a fixed AdmissionReview (allowed) from its configuration: the same handshake,
#      HTTP and body reading, and no admission work at all;
# and the server's peak RSS (VmHWM) after (a).
# Usage: bench/webhook.sh [COUNT]     (needs openssl, curl, python3 and nginx: scripts/test-deps.sh)
# (The recording webhook of the fixtures, tests/fixtures/k8s/tools/webhook.py, was tried as a
# baseline first: 44 ms a review, Python's http.server writing headers and body apart into
# delayed ACKs, and a capture written per review; it measures nothing of interest.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-10000}
work=${BENCH_DIR:-$root/bench/out}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server --bin sparkstage-server --example admission_load
load=$root/target/release/examples/admission_load
source "$root/bench/lib.sh"

pki=$work/webhook-pki
rm -rf "$pki" && mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 2 \
    -subj /CN=bench-webhook-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,digitalSignature 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/server.key" -out "$pki/server.csr" \
    -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$pki/server.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/server.ext" -out "$pki/server.crt" 2>/dev/null

webhook_port=$(free_port)
start_server "--webhook-listen 127.0.0.1:$webhook_port --webhook-cert $pki/server.crt \
    --webhook-key $pki/server.key --pod-server-url http://sparkstage.sparkstage-system:10000"
head -c 100000 /dev/urandom > "$work/webhook-app.jar"
echo "app.jar jar $work/webhook-app.jar" > "$work/webhook-files"
stage_bundle "$work/webhook-token" "$work/webhook-files"
sed "s/0123456789abcdef0123456789abcdef/$bundle_id/" \
    tests/fixtures/k8s/admission/spark-driver-template.review.json > "$work/webhook-review.json"

echo "admission webhook benchmark: $count reviews of a recorded Spark driver pod, $(nproc) cores, $(date -u +%F)"
echo
declare -A result
for c in 1 16; do
    result[ours-$c]=$("$load" "https://127.0.0.1:$webhook_port/v1/admission/pods" "$pki/ca.crt" \
        "$work/webhook-review.json" "$count" "$c")
done
rss=$(peak_mib "$server_pid")
stop_server

nginx_port=$(free_port)
mkdir -p "$work/webhook-nginx/logs"
cat > "$work/webhook-nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
user root;
error_log $work/webhook-nginx/logs/error.log;
pid $work/webhook-nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $pki/server.crt;
    ssl_certificate_key $pki/server.key;
    location / {
      default_type application/json;
      return 200 '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"bench","allowed":true}}';
    }
  }
}
CONF
"$nginx_bin" -p "$work/webhook-nginx" -c "$work/webhook-nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null --cacert "$pki/ca.crt" "https://127.0.0.1:$nginx_port/" && break; sleep 0.05; done
for c in 1 16; do
    result[floor-$c]=$("$load" "https://127.0.0.1:$nginx_port/v1/admission/pods" "$pki/ca.crt" \
        "$work/webhook-review.json" "$count" "$c")
done

field() { sed -E "s/.*$2=([0-9.]+).*/\1/" <<< "$1"; }
printf '%-44s %10s %10s %10s %10s %9s\n' "" p50_ms p90_ms p99_ms max_ms per_s
for c in 1 16; do
    for who in ours floor; do
        name="sparkstage (mutates)"; [[ $who == floor ]] && name="nginx, fixed answer (floor)"
        r=${result[$who-$c]}
        printf '%-44s %10s %10s %10s %10s %9s\n' "$name, $c at once" "$(field "$r" p50_ms)" \
            "$(field "$r" p90_ms)" "$(field "$r" p99_ms)" "$(field "$r" max_ms)" "$(field "$r" per_s)"
    done
done
echo
echo "sparkstage-server peak RSS: $rss MiB"
