#!/usr/bin/env bash
# Add or remove executor replicas of the stack deploy/local/up.sh started, one at a time,
# without touching anything else (no infrastructure, migrations or other services).
#
#   deploy/local/scale.sh count       print how many executor replicas run (stdout: a number)
#   deploy/local/scale.sh add         start one more replica (executor-K, K the lowest free)
#   deploy/local/scale.sh remove      stop the highest-numbered replica (never the last one)
#   deploy/local/scale.sh set K       start or stop replicas until exactly K run (K >= 1)
#
# A replica stops as up.sh stops it (SIGTERM, SIGKILL after 30 s): the batches it holds
# unacknowledged go back to the queue for the others. Prometheus targets follow.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# running_executors: the numbers K of the live executor-K replicas, ascending.
running_executors() {
    local name module
    while read -r name module; do
        [[ "$module" == executor && "${name#executor-}" =~ ^[0-9]+$ ]] || continue
        pid_alive "$RUN_DIR/$name.pid" executor && echo "${name#executor-}"
    done < <(instances_with_pidfiles)
    return 0
}

count_executors() {
    running_executors | wc -l
}

add_executor() {
    local k=1 name
    while pid_alive "$RUN_DIR/executor-$k.pid" executor; do
        ((k++))
    done
    name="executor-$k"
    start_instance "$name" executor || true
    sleep 2
    if ! pid_alive "$RUN_DIR/$name.pid" executor; then
        printf '[coderm] ERROR: %s died right after starting; last lines of var/log/%s.log:\n' "$name" "$name" >&2
        tail -n 20 "$LOG_DIR/$name.log" | sed 's/^/    | /' >&2
        rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port"
        refresh_targets
        return 1
    fi
    ok "$name running (pid $(cat "$RUN_DIR/$name.pid"))"
    refresh_targets
}

remove_executor() {
    local k
    k="$(running_executors | tail -n 1)"
    [[ -n "$k" ]] || die "no executor replica is running"
    (($(count_executors) > 1)) || die "executor-$k is the last replica; not stopping it"
    echo "executor-$k executor" | stop_instances
    refresh_targets
}

need_root
mkdir -p "$RUN_DIR" "$LOG_DIR"
cd "$REPO_ROOT"

case "${1:-}" in
count) count_executors ;;
add) add_executor ;;
remove) remove_executor ;;
set)
    want="${2:-}"
    [[ "$want" =~ ^[1-9][0-9]*$ ]] || die "set needs a positive number of replicas, got '$want'"
    while (($(count_executors) < want)); do
        add_executor
    done
    while (($(count_executors) > want)); do
        remove_executor
    done
    ok "executor replicas: $(count_executors)"
    ;;
-h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
