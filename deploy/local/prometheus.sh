#!/usr/bin/env bash
# A local Prometheus (Debian's prometheus package) that scrapes the coderm services and
# evaluates deploy/prometheus/alerts.yml. No system service: it runs from --dir.
#
#   deploy/local/prometheus.sh [start]     install the package if missing, write the config, start
#   deploy/local/prometheus.sh stop        stop it (SIGTERM, SIGKILL after 30 s)
#   deploy/local/prometheus.sh status      whether it runs, and the health of its targets
#   deploy/local/prometheus.sh targets     rewrite the targets of the services up.sh runs
#   deploy/local/prometheus.sh test-rules  promtool check rules + test rules (alerts_test.yml)
#
# Options: --port P (CODERM_PROMETHEUS_PORT, 9790), --dir D (var/prometheus: config,
# targets, data, log, pid), --scrape-interval S (15s), --target NAME=HOST:PORT
# (repeatable; without it, the services deploy/local/up.sh started, followed as they
# start and stop). Idempotent: a second start reloads the config of the running one.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RULES_DIR="$REPO_ROOT/deploy/prometheus"
ACTION=start
DIR="$PROM_DIR"
PORT="$PROM_PORT"
INTERVAL=15s
TARGETS=()

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
    start | stop | status | targets | test-rules) ACTION="$1" ;;
    --port)
        [[ $# -ge 2 ]] || die "--port needs a number"
        PORT="$2"
        shift
        ;;
    --dir)
        [[ $# -ge 2 ]] || die "--dir needs a directory"
        DIR="$2"
        shift
        ;;
    --scrape-interval)
        [[ $# -ge 2 ]] || die "--scrape-interval needs a duration (e.g. 15s)"
        INTERVAL="$2"
        shift
        ;;
    --target)
        [[ $# -ge 2 && "$2" == *=*:* ]] || die "--target needs NAME=HOST:PORT"
        TARGETS+=("$2")
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
[[ "$PORT" =~ ^[1-9][0-9]*$ ]] || die "--port must be a port number, got '$PORT'"
[[ "$INTERVAL" =~ ^[0-9]+(ms|s|m)$ ]] || die "--scrape-interval must look like 15s, got '$INTERVAL'"
DIR="$(realpath -m "$DIR")"
CONFIG="$DIR/prometheus.yml"
PIDFILE="$DIR/prometheus.pid"
LOG="$DIR/prometheus.log"
TARGETS_FILE="$DIR/targets/services.json"

ensure_prometheus() {
    pkg_installed prometheus || need_root
    ensure_packages prometheus
}

# The pid of the Prometheus this --dir runs, if it runs.
running_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config.file=$CONFIG" || return 1
    echo "$pid"
}

http_ok() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" \
        >/dev/null 2>&1
}

write_config() {
    cat >"$CONFIG.tmp" <<EOF
# Written by deploy/local/prometheus.sh; edits are overwritten on its next start.
global:
  scrape_interval: $INTERVAL
  evaluation_interval: $INTERVAL
rule_files:
  - $RULES_DIR/alerts.yml
scrape_configs:
  - job_name: coderm
    file_sd_configs:
      - files: ["$DIR/targets/*.json"]
        refresh_interval: 5s
EOF
    mv -f "$CONFIG.tmp" "$CONFIG"
    promtool check config "$CONFIG" >/dev/null || die "promtool rejected $CONFIG"
}

write_own_targets() {
    local target
    if ((${#TARGETS[@]})); then
        for target in "${TARGETS[@]}"; do
            echo "${target%%=*} ${target#*=}"
        done | write_targets "$TARGETS_FILE"
    else
        service_targets | write_targets "$TARGETS_FILE"
    fi
}

start() {
    local pid
    ensure_prometheus
    mkdir -p "$DIR/data" "$DIR/targets"
    write_own_targets
    write_config
    if pid="$(running_pid)"; then
        kill -HUP "$pid"
        ok "Prometheus already running (pid $pid); config reloaded"
        say "web and API: http://127.0.0.1:$(listen_port "$pid")"
        return 0
    fi
    say "starting Prometheus on 127.0.0.1:$PORT (log: $LOG)"
    (
        cd "$DIR" || exit 1
        exec setsid nohup prometheus \
            "--config.file=$CONFIG" \
            "--storage.tsdb.path=$DIR/data" \
            "--storage.tsdb.retention.time=15d" \
            "--web.listen-address=127.0.0.1:$PORT"
    ) >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    if wait_until 60 http_ok "http://127.0.0.1:$PORT/-/ready"; then
        ok "Prometheus ready: http://127.0.0.1:$PORT (targets: $TARGETS_FILE)"
        return 0
    fi
    tail -n 20 "$LOG" >&2 || true
    die "Prometheus did not become ready in 60 s (see $LOG)"
}

listen_port() {
    tr '\0' '\n' <"/proc/$1/cmdline" | sed -n 's/^--web.listen-address=.*:\([0-9]*\)$/\1/p'
}

stop() {
    local pid i
    if ! pid="$(running_pid)"; then
        ok "Prometheus ($DIR) not running"
        rm -f "$PIDFILE"
        return 0
    fi
    say "stopping Prometheus (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "Prometheus did not stop in 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    ok "Prometheus stopped"
}

status() {
    local pid port
    if ! pid="$(running_pid)"; then
        echo "  prometheus   not running (start: bash deploy/local/prometheus.sh)"
        return 0
    fi
    port="$(listen_port "$pid")"
    echo "  prometheus   running (pid $pid): http://127.0.0.1:$port"
    python3 - "http://127.0.0.1:$port/api/v1/targets" <<'PY' || echo "  (could not read its targets)"
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
    targets = json.load(answer)["data"]["activeTargets"]
for t in sorted(targets, key=lambda t: t["labels"].get("process", "")):
    error = f" ({t['lastError']})" if t.get("lastError") else ""
    print(f"  {t['labels'].get('process', '?'):<12} {t['scrapeUrl']}: {t['health']}{error}")
if not targets:
    print("  (no targets: no service with a metrics port is running)")
PY
}

test_rules() {
    ensure_prometheus
    (
        cd "$RULES_DIR"
        promtool check rules alerts.yml
        promtool test rules alerts_test.yml
    )
}

case "$ACTION" in
start) start ;;
stop) stop ;;
status) status ;;
targets)
    mkdir -p "$DIR/targets"
    write_own_targets
    ok "targets written: $TARGETS_FILE"
    ;;
test-rules) test_rules ;;
esac
