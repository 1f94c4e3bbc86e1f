#!/usr/bin/env bash
# Bring up the whole coderm stack on this machine (Debian bookworm, as root).
#
#   deploy/local/up.sh                  infra + venv + sandbox image + migrations + services
#   deploy/local/up.sh --infra-only     everything but the four services (what tests need)
#   deploy/local/up.sh --executors K    run K executor replicas (or EXECUTORS=K; surplus ones stop)
#   deploy/local/up.sh --venv-only      only make/refresh .venv
#
# Each service serves /metrics, /healthz and /readyz on its own port (generator 9711,
# extractor 9712, scorer 9713, executor-K 9719+K; see docs/OBSERVABILITY.md);
# deploy/local/prometheus.sh runs a Prometheus that scrapes them.
#
# Idempotent: each step checks first and acts only when something is missing or
# stopped, so a second run changes nothing.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INFRA_ONLY=0
VENV_ONLY=0
EXECUTORS="${EXECUTORS:-1}"

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
    --infra-only) INFRA_ONLY=1 ;;
    --venv-only) VENV_ONLY=1 ;;
    --executors)
        [[ $# -ge 2 ]] || die "--executors needs a number"
        EXECUTORS="$2"
        shift
        ;;
    --executors=*) EXECUTORS="${1#*=}" ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
[[ "$EXECUTORS" =~ ^[1-9][0-9]*$ ]] || die "--executors/EXECUTORS must be a positive integer, got '$EXECUTORS'"

cd "$REPO_ROOT"

if ((VENV_ONLY)); then
    say "[venv] Python environment"
    ensure_venv
    exit 0
fi

need_root
mkdir -p "$RUN_DIR" "$LOG_DIR"

say "[1/10] Debian packages"
# bubblewrap: the sandbox's Docker-less backend (CODERM_SANDBOX__BACKEND=bwrap)
ensure_packages postgresql rabbitmq-server docker.io debootstrap bubblewrap
# kubectl (its built-in kustomize renders deploy/k8s for tests/unit/test_k8s_manifests.py):
# Debian's kubernetes-client where the machine has no kubectl of its own
ensure_kubectl

say "[2/10] PostgreSQL"
ensure_postgres

say "[3/10] RabbitMQ"
ensure_rabbitmq

say "[4/10] Docker"
ensure_docker

say "[5/10] Postgres role and database"
ensure_db

say "[6/10] RabbitMQ vhost, user and permissions"
ensure_mq_user

say "[7/10] Python venv"
ensure_venv

say "[8/10] sandbox image"
[[ -f sandbox/build.sh ]] || die "sandbox/build.sh is missing"
bash sandbox/build.sh
ok "sandbox image ready"
# the image's file system as a directory, for the bwrap backend (sandbox/README.md)
ensure_sandbox_rootfs "${CODERM_SANDBOX_IMAGE:-coderm-sandbox:latest}"

say "[9/10] database migrations"
[[ -f alembic.ini ]] || die "alembic.ini is missing at the repo root"
"$VENV/bin/alembic" upgrade head
ok "database at head"

if ((INFRA_ONLY)); then
    say "[10/10] services: skipped (--infra-only)"
    say "infrastructure is up. Status: bash deploy/local/status.sh"
    exit 0
fi

say "[10/10] services (executors: $EXECUTORS)"
started=()
while read -r name module; do
    if start_instance "$name" "$module"; then
        started+=("$name $module")
    fi
done < <(instances "$EXECUTORS")

# Scaling down: executor replicas beyond EXECUTORS that an earlier run started.
surplus() {
    local name module
    while read -r name module; do
        [[ "$module" == executor && "${name#executor-}" =~ ^[0-9]+$ ]] || continue
        ((${name#executor-} > EXECUTORS)) && echo "$name $module"
    done < <(instances_with_pidfiles)
    return 0
}
if [[ -n "$(surplus)" ]]; then
    stop_instances < <(surplus)
fi

failed=0
if ((${#started[@]})); then
    sleep 2
    for entry in "${started[@]}"; do
        read -r name module <<<"$entry"
        if pid_alive "$RUN_DIR/$name.pid" "$module"; then
            ok "$name running (pid $(cat "$RUN_DIR/$name.pid"))"
        else
            printf '[coderm] ERROR: %s died right after starting; last lines of var/log/%s.log:\n' "$name" "$name" >&2
            tail -n 20 "$LOG_DIR/$name.log" | sed 's/^/    | /' >&2
            rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port"
            failed=1
        fi
    done
fi

# The targets of a Prometheus that follows the services (deploy/local/prometheus.sh).
refresh_targets

execlogs="executor-1.log"
((EXECUTORS == 1)) || execlogs+=" ... executor-$EXECUTORS.log"
say "logs:    $LOG_DIR/<service>.log (executors: $execlogs); tail -f var/log/*.log"
say "status:  bash deploy/local/status.sh   (or: make status)"
say "metrics: http://127.0.0.1:<port>/metrics, /healthz, /readyz (ports: status.sh); Prometheus: bash deploy/local/prometheus.sh"
say "stop:    bash deploy/local/stop.sh     (--all also stops RabbitMQ, PostgreSQL and dockerd)"
if ((failed)); then
    die "some services failed to start (see above)"
fi
say "all services are up"
