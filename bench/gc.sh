#!/usr/bin/env bash
# Garbage-collection benchmark on the local store, side by side with a baseline in one run:
#  a store of BLOBS blobs (default 100000, small files under blobs/sha256/<2 hex>/), half of them
#  referenced by 1000 bundle records, the other half garbage (no grace: --gc-grace 0s);
#  (a) baseline: `find -printf '%s %T@'` over blobs/, the bare listing and stat of every file;
#  (b) the server's startup count of stored bytes (the same listing, through object_store);
#  (c) `POST /v1/gc` with dry_run (mark, list, decide: what `sparkstage gc --dry-run` does);
#  (d) `POST /v1/gc` (the same, condemning and deleting the garbage half);
# with the server's peak RSS (VmHWM) after each. Page cache warm for all.
# Usage: bench/gc.sh [BLOBS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
blobs=${1:-100000}
work=${BENCH_DIR:-$root/bench/out}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo build --release -q -p sparkstage-server --bin sparkstage-server
source "$root/bench/lib.sh"

data=$work/gc-data
rm -rf "$data"
t0=$(now)
python3 - "$data" "$blobs" <<'PY'
import hashlib, json, os, sys, datetime
root, count = sys.argv[1], int(sys.argv[2])
digests = []
for i in range(count):
    body = b"blob %d " % i + os.urandom(64)
    hexd = hashlib.sha256(body).hexdigest()
    d = os.path.join(root, "blobs", "sha256", hexd[:2])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hexd), "wb") as f:
        f.write(body)
    digests.append((hexd, len(body)))
os.makedirs(os.path.join(root, "bundles"), exist_ok=True)
now = datetime.datetime.now(datetime.timezone.utc)
created = now.isoformat().replace("+00:00", "Z")
expires = (now + datetime.timedelta(days=7)).isoformat().replace("+00:00", "Z")
referenced = digests[: count // 2]
per = max(1, len(referenced) // 1000)
for b in range(0, len(referenced), per):
    bid = hashlib.md5(b"bundle %d" % b).hexdigest()
    entries = [{"name": "f%d.jar" % i, "digest": "sha256:" + h, "size": s, "kind": "jar"}
               for i, (h, s) in enumerate(referenced[b:b + per])]
    record = {"manifest": {"id": bid, "entries": entries, "created_at": created,
                           "expires_at": expires}, "token_sha256": "0" * 64}
    with open(os.path.join(root, "bundles", bid + ".json"), "w") as f:
        json.dump(record, f)
with open(os.path.join(root, "sparkstage.json"), "w") as f:
    json.dump({"layout": 1}, f)
PY
t1=$(now)
echo "garbage-collection benchmark: $blobs blobs ($((blobs / 2)) referenced by 1000 bundles), local store, $(nproc) cores, $(date -u +%F)"
printf '    (store written in %.1f s)\n\n' "$(python3 -c "print($t1-$t0)")"
find "$data" -type f -printf '' # warm the dentry and inode caches

secs() { python3 -c "print(f'{$2-$1:7.2f}')"; }
t0=$(now); listed=$(find "$data/blobs" -type f -printf '%s %T@\n' | wc -l); t1=$(now)
find_s=$(secs "$t0" "$t1")

port=$(free_port)
t0=$(now)
"$root/target/release/sparkstage-server" --listen 127.0.0.1:"$port" --storage "$data" \
    --gc-grace 0s --gc-interval 24h --sweep-interval 24h 2>"$work/gc-server.log" &
server_pid=$!; pids+=("$server_pid")
url=http://127.0.0.1:$port
for _ in $(seq 200); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.05; done
# The startup count is done when the log says so.
for _ in $(seq 1200); do grep -q "counted the stored blobs" "$work/gc-server.log" && break; sleep 0.05; done
t1=$(now)
count_s=$(secs "$t0" "$t1")
count_rss=$(peak_mib "$server_pid")

gc() {  # $1 = dry_run; sets gc_s, gc_answer
    local t0 t1
    t0=$(now)
    gc_answer=$(curl -sf -H 'content-type: application/json' "$url/v1/gc" -d "{\"dry_run\": $1}")
    t1=$(now)
    gc_s=$(secs "$t0" "$t1")
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$gc_answer" "$1"; }
gc true; dry_s=$gc_s; dry_would=$(field blobs_deleted); dry_rss=$(peak_mib "$server_pid")
gc false; real_s=$gc_s; deleted=$(field blobs_deleted); kept=$(field blobs_kept)
real_rss=$(peak_mib "$server_pid")
left=$(find "$data/blobs" -type f | wc -l)

echo "                                              seconds   peak RSS (MiB)"
printf '(a) find -printf over %6d files (baseline)  %s\n' "$listed" "$find_s"
printf '(b) server start and count of stored bytes  %s   %8s\n' "$count_s" "$count_rss"
printf '(c) gc dry run (would delete %6d)         %s   %8s\n' "$dry_would" "$dry_s" "$dry_rss"
printf '(d) gc: deleted %6d, kept %6d          %s   %8s\n' "$deleted" "$kept" "$real_s" "$real_rss"
echo
echo "blobs left on disk: $left (expected $((blobs - deleted)))"
[[ $left -eq $((blobs - deleted)) && $deleted -eq $((blobs - blobs / 2)) ]] || { echo "wrong result" >&2; exit 1; }
