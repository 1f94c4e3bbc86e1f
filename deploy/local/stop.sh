#!/usr/bin/env bash
# Stop the coderm services started by deploy/local/up.sh.
#
#   deploy/local/stop.sh         SIGTERM each service (SIGKILL after 30 s), remove pid files
#   deploy/local/stop.sh --all   also stop our Prometheus, RabbitMQ, PostgreSQL and dockerd
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL=0
while (($#)); do
    case "$1" in
    --all) ALL=1 ;;
    -h | --help)
        sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

say "stopping services"
if [[ -n "$(instances_with_pidfiles)" ]]; then
    stop_instances < <(instances_with_pidfiles)
else
    ok "no service pid files under var/run"
fi
refresh_targets

if ((ALL)); then
    say "stopping infrastructure"
    bash "$REPO_ROOT/deploy/local/prometheus.sh" stop || warn "deploy/local/prometheus.sh stop failed"
    if mq_up; then
        say "stopping RabbitMQ"
        rabbitmqctl -q stop </dev/null || warn "rabbitmqctl stop failed"
    else
        ok "RabbitMQ not running"
    fi
    v="$(pg_version)"
    if pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2" "$4}' | grep -qx "$v main online"; then
        say "stopping PostgreSQL $v/main"
        pg_ctlcluster "$v" main stop || warn "pg_ctlcluster stop failed"
    else
        ok "PostgreSQL not running"
    fi
    if [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        pid="$(cat /var/run/docker.pid)"
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null && warn "dockerd still running after 30 s"
    else
        ok "dockerd not running"
    fi
fi
say "done"
