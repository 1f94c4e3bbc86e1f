#!/usr/bin/env bash
# Show the state of the local coderm stack: infrastructure, services, queues, sandboxes.
# Exits 0 whatever it finds; it only reports.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

updown() { if "$@"; then echo up; else echo down; fi; }

say "infrastructure"
printf '  %-12s %s\n' postgresql "$(updown pg_up)"
mq_state="$(updown mq_up)"
printf '  %-12s %s\n' rabbitmq "$mq_state"
docker_state="$(updown docker_up)"
printf '  %-12s %s\n' docker "$docker_state"
if [[ -x "$VENV/bin/python" ]]; then venv_state=present; else venv_state=missing; fi
printf '  %-12s %s\n' venv "$venv_state"

say "services"
listed=0
while read -r name module; do
    listed=1
    if pid_alive "$RUN_DIR/$name.pid" "$module"; then
        metrics=""
        [[ -s "$RUN_DIR/$name.port" ]] && metrics=", metrics http://127.0.0.1:$(cat "$RUN_DIR/$name.port")/metrics"
        printf '  %-12s running (pid %s%s)\n' "$name" "$(cat "$RUN_DIR/$name.pid")" "$metrics"
    else
        printf '  %-12s NOT running (stale pid file)\n' "$name"
    fi
done < <(instances_with_pidfiles)
((listed)) || echo "  (no services started; run deploy/local/up.sh)"

say "queues (vhost $MQ_VHOST)"
if [[ "$mq_state" == up ]]; then
    rabbitmqctl -q -p "$MQ_VHOST" list_queues name messages messages_unacknowledged consumers \
        </dev/null 2>&1 | { IFS= read -r header && printf '  %s\n' "$header" && sort | sed 's/^/  /'; } ||
        echo "  (could not list queues)"
else
    echo "  (RabbitMQ is down)"
fi

say "metrics"
bash "$REPO_ROOT/deploy/local/prometheus.sh" status || echo "  (could not ask deploy/local/prometheus.sh)"

say "sandboxes"
if [[ "$docker_state" == up ]]; then
    n="$(docker ps -q --filter label=coderm.sandbox=1 2>/dev/null | wc -l)"
    echo "  running sandbox containers: $n"
else
    echo "  (Docker is down)"
fi
