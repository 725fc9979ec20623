#!/usr/bin/env bash
# Times `keeper upload` against `ltd upload` (ltd-conveyor 0.8.4) uploading the same generated site
# (FILES files, default 5000) to the same `keeper serve` (local store), first on loopback, then
# with DELAY_MS (default 20) added to every request by a delaying proxy, and prints both ratios.
#
#   bench/upload.sh                       # debug build of keeper (PROFILE=release for release)
#   FILES=1000 DELAY_MS=50 bench/upload.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-5000}
DELAY_MS=${DELAY_MS:-20}
JOBS=${JOBS:-16}
PROFILE=${PROFILE:-debug}
USER_NAME=bench
PASSWORD=bench-password

log() { printf '==> %s\n' "$*" >&2; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "$PROFILE" = release ]; then
    cargo build --release --bin keeper >&2
else
    cargo build --bin keeper >&2
fi
# Where cargo put it (CARGO_TARGET_DIR and cargo's config are honoured).
KEEPER=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/$PROFILE/keeper
LTD=$(scripts/install-ltd-conveyor)

WORK=$(mktemp -d /tmp/keeper-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "generating a site of $FILES files"
python3 bench/generate_site.py "$WORK/site" "$FILES"
SITE_BYTES=$(du -sb "$WORK/site" | cut -f1)

wait_for() { # URL
    local deadline=$((SECONDS + 60))
    until curl -sf "$1" >/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "error: $1 did not answer" >&2; exit 1; }
        sleep 0.1
    done
}

# Starts keeper serve on port $1 with public URL $2 (the proxy's, when there is one).
start_keeper() {
    env KEEPER_BIND="127.0.0.1:$1" KEEPER_PUBLIC_URL="$2" \
        KEEPER_DATABASE_URL="sqlite://$WORK/keeper.sqlite3" KEEPER_STORAGE_DIR="$WORK/keeper-data" \
        KEEPER_BOOTSTRAP_USER=$USER_NAME KEEPER_BOOTSTRAP_PASSWORD=$PASSWORD \
        KEEPER_SERVE_RUNS_WORKER=false KEEPER_LOG=warn \
        "$KEEPER" serve >>"$WORK/keeper.log" 2>&1 &
    KEEPER_PID=$!
    PIDS+=("$KEEPER_PID")
    wait_for "http://127.0.0.1:$1/health/ready"
}

stop_keeper() {
    kill "$KEEPER_PID"
    wait "$KEEPER_PID" 2>/dev/null || true
}

seconds_of() { # command...: runs it, prints the wall time in seconds
    local start end
    start=$(date +%s.%N)
    "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; echo "error: $1 failed" >&2; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.2f}')"
}

# Runs both clients against $1 (the URL they talk to); prints "ltd_seconds keeper_seconds".
race() {
    local host=$1 ltd_s keeper_s
    ltd_s=$(seconds_of "$LTD" --host "$host" -u $USER_NAME -p $PASSWORD upload \
        --product bench --dir "$WORK/site" --git-ref main)
    keeper_s=$(seconds_of "$KEEPER" --host "$host" -u $USER_NAME -p $PASSWORD upload \
        --product bench --dir "$WORK/site" --git-ref main --jobs "$JOBS")
    echo "$ltd_s $keeper_s"
}

PORT=$(free_port)
start_keeper "$PORT" "http://127.0.0.1:$PORT"
TOKEN=$(curl -sf -u $USER_NAME:$PASSWORD "http://127.0.0.1:$PORT/token" | jq -r .token)
curl -sf -u "$TOKEN:" -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/products/" \
    -d '{"slug": "bench", "title": "Bench", "doc_repo": "https://example.org/bench"}' >/dev/null

log "loopback: ltd upload, then keeper upload ($FILES files, $SITE_BYTES bytes)"
read -r LOOP_LTD LOOP_KEEPER < <(race "http://127.0.0.1:$PORT")
stop_keeper

PROXY_PORT=$(free_port)
python3 bench/delay_proxy.py "$PROXY_PORT" "$PORT" "$DELAY_MS" &
PIDS+=("$!")
start_keeper "$PORT" "http://127.0.0.1:$PROXY_PORT"
wait_for "http://127.0.0.1:$PROXY_PORT/health/live"
log "with $DELAY_MS ms added to every request: ltd upload, then keeper upload"
read -r DELAY_LTD DELAY_KEEPER < <(race "http://127.0.0.1:$PROXY_PORT")
stop_keeper

python3 - "$FILES" "$SITE_BYTES" "$JOBS" "$PROFILE" "$DELAY_MS" \
    "$LOOP_LTD" "$LOOP_KEEPER" "$DELAY_LTD" "$DELAY_KEEPER" <<'PY'
import sys
files, size, jobs, profile, delay = sys.argv[1:6]
loop_ltd, loop_keeper, delay_ltd, delay_keeper = map(float, sys.argv[6:])
print(f"site: {files} files, {int(size) / 1e6:.1f} MB; keeper {profile} build; keeper upload --jobs {jobs}")
print(f"loopback:        ltd upload {loop_ltd:7.2f} s   keeper upload {loop_keeper:7.2f} s   ratio {loop_ltd / loop_keeper:5.1f}x")
print(f"+{delay} ms/request: ltd upload {delay_ltd:7.2f} s   keeper upload {delay_keeper:7.2f} s   ratio {delay_ltd / delay_keeper:5.1f}x")
PY
