# shellcheck shell=bash disable=SC2034  # sourced: variables are used by the callers
# Shared helpers for the scripts in ops/ (sourced, not run).
#
# Sets REPO_ROOT, and defines small helpers for messages, bounded waits and
# port checks. Every wait here is bounded: nothing in ops/ may hang forever.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The local infrastructure every script expects.
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=root
AMQP_HOST=127.0.0.1
AMQP_PORT=5672
AMQP_URL="amqp://guest:guest@${AMQP_HOST}:${AMQP_PORT}/%2f"

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# tcp_open HOST PORT: true if something accepts TCP connections there.
tcp_open() {
    local host=$1 port=$2
    # The subshell owns the file descriptor; `timeout` bounds a connect that
    # would otherwise hang on a filtered port.
    timeout 2 bash -c "exec 3<>/dev/tcp/${host}/${port}" >/dev/null 2>&1
}

# wait_until SECONDS DESCRIPTION COMMAND...: runs COMMAND every second until it
# succeeds or SECONDS have passed. Returns 1 on timeout (the caller reports).
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    while ! "$@"; do
        if ((SECONDS >= deadline)); then
            warn "Timed out after ${seconds} s waiting for ${what}."
            return 1
        fi
        sleep 1
    done
}

# as_root COMMAND...: runs COMMAND as root (directly, or with sudo -n).
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "this step needs root (or password-less sudo): $*"
    fi
}

# as_postgres SQL: runs one SQL statement as the postgres superuser over the
# local socket (the one login a fresh Debian cluster always allows).
as_postgres() {
    as_root su postgres -s /bin/sh -c "psql -X -q -At -d postgres -c \"$1\""
}

# psql_root ARGS...: psql as ${PG_USER} over TCP, the way Rampart connects.
psql_root() {
    PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
}

# log_tail FILE [LINES]: prints the end of a log, framed, to stderr.
log_tail() {
    local file=$1 lines=${2:-40}
    if [[ -s $file ]]; then
        warn "----- last ${lines} lines of ${file} -----"
        tail -n "$lines" "$file" >&2
        warn "----- end of ${file} -----"
    else
        warn "(${file} is empty or missing)"
    fi
}
