#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL server: `Scripts/with-postgres.sh swift test ...`.
#
# Installs PostgreSQL from Debian's packages when no server binaries are found (`apt-get update` once, then
# `apt-get install -y postgresql`), creates a cluster with `initdb` in a temporary directory (as the `postgres`
# user when run as root: PostgreSQL refuses to run as root), starts it with `pg_ctl` on a free loopback port,
# creates a database, exports REFINER_SEGMENT_POSTGRES_URL, runs the command, then stops the server and removes
# the directory whatever happens (success, failure, Ctrl-C). The command's exit status is the script's.
#
# Settings: REFINER_SEGMENT_POSTGRES_DATABASE (default refiner_segment_test); REFINER_SEGMENT_POSTGRES_KEEP_LOG=1
# prints the server's log when the command fails.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGUMENT...]" >&2
    exit 64
fi

database="${REFINER_SEGMENT_POSTGRES_DATABASE:-refiner_segment_test}"

log() { echo "with-postgres: $*" >&2; }

# The newest installed server's binaries (Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin).
find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

if ! bindir=$(find_bindir); then
    if [ "$(id -u)" -ne 0 ]; then
        log "no PostgreSQL server found and not root: install Debian's postgresql package first"
        exit 69
    fi
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    bindir=$(find_bindir) || { log "postgresql installed but initdb/pg_ctl not found"; exit 69; }
fi

# PostgreSQL refuses to run as root; as root, the server runs as the package's `postgres` user.
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    as_server() { runuser -u postgres -- "$@"; }
    user=postgres
else
    as_server() { "$@"; }
    user=$(id -un)
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/refiner-segment-postgres.XXXXXX")
chmod 755 "$workdir"
data="$workdir/data"
mkdir "$data"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$workdir"; fi

started=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$started" -eq 1 ]; then
        as_server "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || as_server "$bindir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ "$status" -ne 0 ] && [ "${REFINER_SEGMENT_POSTGRES_KEEP_LOG:-0}" = 1 ] && [ -f "$workdir/server.log" ]; then
        log "server log:"
        cat "$workdir/server.log" >&2
    fi
    rm -rf "$workdir"
    exit "$status"
}
child=0
# A signal stops the command first (it runs in the background so that the trap fires at once), then cleans up.
on_signal() {
    if [ "$child" -ne 0 ]; then kill -"$1" "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
    exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

as_server "$bindir/initdb" -D "$data" -U "$user" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null \
    || as_server "$bindir/initdb" -D "$data" -U "$user" --auth=trust --encoding=UTF8 --no-locale >/dev/null

# A free loopback port: ask the kernel for one, then let pg_ctl fail and try again if another process took it
# meanwhile.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

for attempt in 1 2 3 4 5; do
    port=$(free_port)
    if as_server "$bindir/pg_ctl" -D "$data" -l "$workdir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$workdir' -c max_connections=200 -c shared_buffers=128MB" \
        start >/dev/null; then
        started=1
        break
    fi
    log "the server did not start on port $port (attempt $attempt)"
done
if [ "$started" -ne 1 ]; then
    cat "$workdir/server.log" >&2 || true
    log "could not start PostgreSQL"
    exit 70
fi

as_server "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$database"

export REFINER_SEGMENT_POSTGRES_URL="postgres://$user@127.0.0.1:$port/$database"
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $REFINER_SEGMENT_POSTGRES_URL"

set +e
"$@" &
child=$!
wait "$child"
status=$?
child=0
set -e
exit "$status"
