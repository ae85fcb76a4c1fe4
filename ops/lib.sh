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
# The broker's management API, and the Rampart administrator of the broker
# (`administrator` tag) that makes every process's own broker user. Its
# credentials file (`user:password`, mode 0600) is written by ops/services.
MANAGEMENT_URL="http://${AMQP_HOST}:15672"
BROKER_ADMIN=rampart-admin
BROKER_ADMIN_CREDENTIALS="$REPO_ROOT/.rampart/broker-admin.credentials"

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

# drop_old_databases PREFIX: drops the databases `PREFIX_*` that earlier test
# or benchmark runs left behind. A database still in use (a run going on
# elsewhere on this machine) refuses a plain DROP and is skipped, and so is
# one created in the last 10 minutes (a run about to connect to it).
drop_old_databases() {
    local prefix=$1
    have psql || { warn "psql not found: leaving old ${prefix}_* databases in place."; return 0; }
    local dbs db n=0
    dbs=$(psql_root -d postgres -c "
        select datname from pg_database
        where datname like '${prefix}\_%'
          and coalesce((pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification, 'epoch')
              < now() - interval '10 minutes'") || {
        warn "Could not list old ${prefix}_* databases; leaving them in place."
        return 0
    }
    for db in $dbs; do
        if psql_root -d postgres -c "DROP DATABASE IF EXISTS \"${db}\"" 2>/dev/null; then
            n=$((n + 1))
        fi
    done
    ((n == 0)) || say "Dropped ${n} old ${prefix}_* database(s)."
}

# Every test, chaos and benchmark run holds this lock shared while it runs
# (its file descriptor stays open through `exec` and in cargo's children), so
# a run about to clean up can tell whether another run is going.
RUNS_LOCK="${TMPDIR:-/tmp}/rampart-runs.lock"

# leftovers_gone DB_PREFIX QUEUE_PREFIX: removes the databases `DB_PREFIX_*`
# and the queues of the namespaces `QUEUE_PREFIX_*` that earlier runs left
# behind, unless another run is going on this machine (they may be its own:
# the next run alone removes them), then marks this run as going until it
# exits.
leftovers_gone() {
    local db_prefix=$1 queue_prefix=$2
    if ! have flock; then
        warn "flock not found: cleaning up without checking for other runs."
        drop_old_databases "$db_prefix"
        idle_queues_gone "$queue_prefix"
        return 0
    fi
    exec {RUNS_LOCK_FD}>>"$RUNS_LOCK"
    if flock -n -x "$RUNS_LOCK_FD"; then
        drop_old_databases "$db_prefix"
        idle_queues_gone "$queue_prefix"
    else
        say "Another test or benchmark run is going: leaving old ${db_prefix}_* databases and ${queue_prefix}_* queues for a later run."
    fi
    flock -s "$RUNS_LOCK_FD"
}

# idle_queues_gone PREFIX: deletes the queues of the AMQP namespaces
# `PREFIX_*` that earlier runs left behind. A namespace whose queues have no
# consumer at all belongs to a finished run; one with a consumer is left alone.
idle_queues_gone() {
    local prefix=$1
    have rabbitmqctl || return 0
    local listing
    listing=$(timeout 30 rabbitmqctl list_queues -q name consumers 2>/dev/null) || return 0
    local -A consumers=()
    local -a queues=()
    local name count ns
    while read -r name count; do
        [[ $name == "${prefix}"_* && $count =~ ^[0-9]+$ ]] || continue # also skips the header
        ns=${name%%.*}
        consumers[$ns]=$((${consumers[$ns]:-0} + count))
        queues+=("$name")
    done <<<"$listing"
    local -a idle=()
    for ns in "${!consumers[@]}"; do
        ((${consumers[$ns]} == 0)) && idle+=("$ns")
    done
    ((${#idle[@]} > 0)) || return 0
    # One call for all of them (each rabbitmqctl call costs about a second);
    # queue by queue if the broker's internals differ from 3.10's.
    local prefixes
    prefixes=$(printf '<<"%s.">>,' "${idle[@]}")
    if timeout 120 rabbitmqctl eval "Idle = [${prefixes%,}],
        Gone = [rabbit_amqqueue:delete(Q, false, false, <<\"ops\">>) || Q <- rabbit_amqqueue:list(<<\"/\">>),
                lists:any(fun(P) -> binary:longest_common_prefix([element(4, amqqueue:get_name(Q)), P]) =:= byte_size(P) end, Idle)],
        length(Gone)." >/dev/null 2>&1; then
        say "Deleted the queues of ${#idle[@]} old ${prefix}_* namespace(s)."
        return 0
    fi
    local n=0
    for name in "${queues[@]}"; do
        ns=${name%%.*}
        ((${consumers[$ns]} == 0)) || continue
        if timeout 15 rabbitmqctl delete_queue -q "$name" >/dev/null 2>&1; then
            n=$((n + 1))
        fi
    done
    ((n == 0)) || say "Deleted ${n} old ${prefix}_* queue(s)."
}

# Open files a broker started by these scripts may hold: each connection and
# each quorum queue holds some, and the full benchmark has about 100
# connections and 500 queues (the usual default of 1024 runs out, and then
# the broker stops accepting connections).
RABBIT_OPEN_FILES=65536

# rabbit_launch: starts the local broker in the background with room for
# RABBIT_OPEN_FILES open files. Debian's wrapper switches to the rabbitmq
# user with su, whose login limits put the default back, so the limit is
# raised here and the user switched without a login session (setpriv).
rabbit_launch() {
    if have setpriv && id rabbitmq >/dev/null 2>&1 && [[ -d /var/lib/rabbitmq ]]; then
        as_root bash -c "ulimit -n ${RABBIT_OPEN_FILES} 2>/dev/null || ulimit -n \$(ulimit -Hn)
            cd /var/lib/rabbitmq && exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
                env HOME=/var/lib/rabbitmq rabbitmq-server -detached"
    else
        as_root rabbitmq-server -detached
    fi
}

# rabbit_open_files: the running local broker's limit of open files (empty
# when there is no local broker process to read it from). Only the shared
# node `rabbit@localhost` counts: the fault suite's private nodes (and any
# other named node) run the same beam.smp but say their name in
# RABBITMQ_NODENAME.
rabbit_open_files() {
    local pid="" candidate node
    local pidfile=/var/lib/rabbitmq/mnesia/rabbit@localhost.pid
    if [[ -r $pidfile ]]; then
        pid=$(<"$pidfile")
        [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || pid=""
    fi
    if [[ -z $pid ]]; then
        for candidate in $(pgrep -f 'beam.smp.*rabbit' || true); do
            node=$(tr '\0' '\n' <"/proc/${candidate}/environ" 2>/dev/null | sed -n 's/^RABBITMQ_NODENAME=//p')
            if [[ -z $node || $node == rabbit@localhost ]]; then
                pid=$candidate
                break
            fi
        done
    fi
    [[ -n $pid ]] || return 0
    awk '/Max open files/ {print $4}' "/proc/${pid}/limits" 2>/dev/null
}

# --- extra local broker nodes --------------------------------------------------------
# A RabbitMQ node of its own beside the machine's broker (ops/demo
# --multi-site: a broker per site), the way the fault suite starts its
# private nodes (tests/src/faults/broker.rs): its own node name, AMQP,
# management and Erlang distribution ports on 127.0.0.1, its data, logs,
# configuration and plugins in one directory. It has no `guest`: its one
# user at start is the administrator `rampart-admin`, with a random
# password written to a credentials file (`user:password`, mode 0600). Its
# schedulers do not busy-wait (`+sbwt none`), so several nodes share two
# cores. As root it runs as the `rabbitmq` user (the Erlang cookie in
# /var/lib/rabbitmq); as anyone else, as that user with the cookie in the
# node's directory.

RABBIT_NODE_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
RABBIT_NODE_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
# Bound of a node's start and of one rabbitmqctl call.
RABBIT_NODE_TIMEOUT=90

# rabbit_node_exec DIR COMMAND...: runs COMMAND with the environment of the
# node in DIR (written by rabbit_node_start to DIR/node.env), as the node's user.
rabbit_node_exec() {
    local dir=$1
    shift
    local -a env
    mapfile -t env <"$dir/node.env"
    if ((EUID == 0)) && id rabbitmq >/dev/null 2>&1 && have setpriv; then
        setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq "${env[@]}" "$@"
    else
        env HOME="$dir" "${env[@]}" "$@"
    fi
}

# rabbit_node_value DIR NAME: one value of the node's node.env (e.g.
# RABBITMQ_NODENAME, RABBITMQ_NODE_PORT, RAMPART_MANAGEMENT_PORT).
rabbit_node_value() {
    sed -n "s/^$2=//p" "$1/node.env" 2>/dev/null
}

# rabbit_node_pid DIR: the pid of the node in DIR if it runs (else fails).
rabbit_node_pid() {
    local dir=$1 pid node
    [[ -r $dir/pid ]] || return 1
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Guards against a recycled pid: the process is this node's beam.
    node=$(rabbit_node_value "$dir" RABBITMQ_NODENAME)
    tr '\0' '\n' <"/proc/${pid}/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=${node}" || return 1
    printf '%s' "$pid"
}

# rabbit_node_start DIR NODE AMQP_PORT MANAGEMENT_PORT DIST_PORT CREDENTIALS PLUGIN...:
# starts a fresh node (whatever DIR held is removed) named NODE@localhost,
# with the management plugin and the PLUGINs, and waits until its
# management API answers its administrator, whose credentials it writes to
# CREDENTIALS. Fails with the node's log when it does not start.
rabbit_node_start() {
    local dir=$1 node=$2 amqp_port=$3 management_port=$4 dist_port=$5 credentials=$6
    shift 6
    local plugins port
    plugins=$(printf ',%s' rabbitmq_management "$@")
    [[ -x $RABBIT_NODE_SERVER ]] || die "RabbitMQ is not installed here (${RABBIT_NODE_SERVER}); run ops/services first."
    for port in "$amqp_port" "$management_port" "$dist_port"; do
        ! tcp_open 127.0.0.1 "$port" || die "port ${port} on 127.0.0.1 is busy; the broker node ${node} needs it."
    done
    rm -rf "$dir"
    mkdir -p "$dir/mnesia" "$dir/log"
    local password
    password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s:%s\n' "$BROKER_ADMIN" "$password" >"$credentials")
    printf '[%s].\n' "${plugins#,}" >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<CONF
management.tcp.ip = 127.0.0.1
management.tcp.port = ${management_port}
collect_statistics_interval = 1000
default_user = ${BROKER_ADMIN}
default_pass = ${password}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
CONF
    cat >"$dir/node.env" <<ENV
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_NODENAME=${node}@localhost
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=${amqp_port}
RABBITMQ_DIST_PORT=${dist_port}
RABBITMQ_MNESIA_BASE=${dir}/mnesia
RABBITMQ_LOG_BASE=${dir}/log
RABBITMQ_ENABLED_PLUGINS_FILE=${dir}/enabled_plugins
RABBITMQ_CONFIG_FILE=${dir}/rabbitmq.conf
RABBITMQ_PID_FILE=${dir}/pid
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=+sbwt none +sbwtdcpu none +sbwtdio none
RAMPART_MANAGEMENT_PORT=${management_port}
ENV
    chmod 0700 "$dir"
    chmod 0600 "$dir/rabbitmq.conf"
    if ((EUID == 0)) && id rabbitmq >/dev/null 2>&1; then
        chown -R rabbitmq:rabbitmq "$dir"
    fi
    rabbit_node_exec "$dir" timeout "$RABBIT_NODE_TIMEOUT" "$RABBIT_NODE_SERVER" -detached >"$dir.start.log" 2>&1 || {
        log_tail "$dir.start.log"
        die "the broker node ${node} did not start."
    }
    local deadline=$((SECONDS + RABBIT_NODE_TIMEOUT))
    until curl -fsS --max-time 2 -o /dev/null -u "$(<"$credentials")" "http://127.0.0.1:${management_port}/api/overview" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log_tail "$(ls -1t "$dir"/log/*.log 2>/dev/null | head -1)"
            die "the broker node ${node} did not serve its management API on 127.0.0.1:${management_port} within ${RABBIT_NODE_TIMEOUT} s (logs in ${dir}/log)."
        fi
        sleep 1
    done
}

# rabbit_node_stop DIR: stops the node in DIR if it runs (rabbitmqctl stop,
# then kill -9 if it is still there after RABBIT_NODE_TIMEOUT seconds).
# Prints what it stopped; its data stays in DIR.
rabbit_node_stop() {
    local dir=$1 pid node
    pid=$(rabbit_node_pid "$dir") || return 0
    node=$(rabbit_node_value "$dir" RABBITMQ_NODENAME)
    rabbit_node_exec "$dir" timeout "$RABBIT_NODE_TIMEOUT" "$RABBIT_NODE_CTL" -n "$node" stop >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "The broker node ${node} (pid ${pid}) did not stop: killing it."
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    say "Stopped the broker node ${node} (pid ${pid})."
}
