#!/usr/bin/env bash
# Webhooks per second through the Hummingbird bridge (`refiner-webhook-bridge`, release build) over loopback,
# with its store on this machine's disk (a webhook is answered 200 after its calls are fsynced) and on a tmpfs
# (/dev/shm: fsync returns at once), in the same run, so the cost of "durable before 200" is one ratio in the
# shape a server sees it: many HTTP connections, one webhook a request. Docs/Performance.md, "The bridge".
#
# Not run by CI (a benchmark, not a test). Installs `wrk` from Debian's packages when missing; the Segment
# stand-in is a small Python server that answers every batch 200. The fixture's webhook is sent with a new
# response, user and account id in each request (BENCH_ACCOUNTS=N: N accounts shared by all requests instead).
#
# Settings: BENCH_CONNECTIONS (64), BENCH_SECONDS (8), BENCH_ACCOUNTS (0: one account a request).
set -euo pipefail
cd "$(dirname "$0")/.."

connections="${BENCH_CONNECTIONS:-64}"
seconds="${BENCH_SECONDS:-8}"
accounts="${BENCH_ACCOUNTS:-0}"

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
swift build -c release --package-path Integrations --product refiner-webhook-bridge
bridge="$PWD/Integrations/.build/release/refiner-webhook-bridge"

work=$(mktemp -d)
shm=$(mktemp -d /dev/shm/refiner-bridge-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work" "$shm"
}
trap cleanup EXIT

# The wrk script: the fixture with placeholders, filled in per request.
python3 - "$work/post.lua" <<'EOF'
import json, sys
d = json.load(open('Tests/RefinerSegmentTests/Fixtures/refiner-webhook-completed-survey.json'))
d['response']['uuid'] = 'RESPONSEID'
d['remote_id'] = 'USERID'
d['account']['remote_id'] = 'ACCOUNTID'
d['account']['uuid'] = 'ACCOUNTUUID'
body = json.dumps(d, separators=(',', ':'))
open(sys.argv[1], 'w').write('''
local template = [==[''' + body + ''']==]
local counter = 0
local accounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "0")
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Refiner-Secret"] = "bench-secret-0123456789"
function request()
  counter = counter + 1
  local id = tid .. "-" .. counter
  local account = accounts > 0 and tostring(counter % accounts) or id
  local body = template:gsub("RESPONSEID", "r-" .. id):gsub("USERID", "u-" .. id)
  body = body:gsub("ACCOUNTID", "a-" .. account):gsub("ACCOUNTUUID", "acc-" .. account)
  return wrk.format(nil, "/webhooks/refiner", nil, body)
end
''')
EOF

# The Segment stand-in: 200 to every batch.
cat >"$work/sink.py" <<'EOF'
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        body = b'{"success":true}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *arguments): pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
EOF
python3 "$work/sink.py" >"$work/sink.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
sink_port=$(cat "$work/sink.port")
bridge_port=$((20000 + RANDOM % 20000))

# One measurement: the bridge on a store directory, wrk against it, then SIGTERM (the bridge drains).
measure() {
    local store="$1/store"
    mkdir -m 700 "$store"
    SEGMENT_WRITE_KEY=bench SEGMENT_ENDPOINT="http://127.0.0.1:$sink_port" \
        REFINER_WEBHOOK_SECRET=bench-secret-0123456789 BRIDGE_PORT="$bridge_port" BRIDGE_STORE_DIR="$store" \
        BRIDGE_MAX_CONNECTIONS=1024 "$bridge" >"$1/bridge.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do grep -q "listening" "$1/bridge.log" && break; sleep 0.1; done
    local rate
    rate=$(BENCH_ACCOUNTS="$accounts" wrk -t1 -c"$connections" -d"${seconds}s" -s "$work/post.lua" \
        "http://127.0.0.1:$bridge_port/" | awk '/Requests\/sec/ { print $2 } /Non-2xx/ { print "non-2xx:", $0 > "/dev/stderr" }')
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$rate"
}

mkdir "$work/disk"
echo "== $connections connections, ${seconds}s each, accounts: ${accounts/#0/one a request}; load $(cut -d' ' -f1 /proc/loadavg)"
disk=$(measure "$work/disk")
tmpfs=$(measure "$shm")
echo "bridge_webhooks_disk $disk webhooks/s"
echo "bridge_webhooks_tmpfs $tmpfs webhooks/s"
python3 -c "print('ratio %.2fx' % ($disk / $tmpfs))"
