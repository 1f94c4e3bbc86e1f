#!/usr/bin/env bash
# Write compose's env file, or bring it up to date: the credentials of PostgreSQL and
# RabbitMQ (random, made once and then kept), which images to run, and the host ports.
# compose.yaml has no default password: it refuses to start without this file.
#
#   bash deploy/images/compose-env.sh [--file PATH] [--images offline|official] [KEY=VALUE...]
#
#   --file PATH          default: .env in the repository (git-ignored), which compose
#                        reads by itself; another file: `compose --env-file PATH`
#   --images official    the registry's images: postgres:16, rabbitmq:3-management and
#                        coderm:latest built from deploy/docker/Dockerfile (python:3.11-slim)
#   --images offline     the images deploy/images/build.sh built (it passes their names
#                        as KEY=VALUE); the default is to keep what the file says
#   KEY=VALUE            set KEY (e.g. CODERM_GATEWAY_PORT=8710, COMPOSE_PROJECT_NAME=x)
#
# The file is written with mode 600. A value already in it is kept unless given here;
# a host port not yet chosen is the usual one if it is free now, else a free one above
# 20000 (so a PostgreSQL or RabbitMQ already on this host is no obstacle).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
file="$(cd "$here/../.." && pwd)/.env"
images=""
declare -A set_now=()
while (($#)); do
    case "$1" in
    --file)
        [[ $# -ge 2 ]] || { echo "--file needs a path" >&2; exit 2; }
        file="$2"
        shift
        ;;
    --images)
        [[ $# -ge 2 ]] || { echo "--images needs offline or official" >&2; exit 2; }
        images="$2"
        shift
        ;;
    -h | --help)
        sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *=*) set_now["${1%%=*}"]="${1#*=}" ;;
    *)
        echo "unknown argument: $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
[[ -z "$images" || "$images" == offline || "$images" == official ]] ||
    { echo "--images takes offline or official, not '$images'" >&2; exit 2; }

# the current values, in their order
declare -A value=()
order=()
if [[ -f "$file" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}"
        [[ -v "value[$key]" ]] || order+=("$key")
        value[$key]="${BASH_REMATCH[2]}"
    done <"$file"
fi

put() { # put KEY VALUE: set KEY
    [[ -v "value[$1]" ]] || order+=("$1")
    value[$1]="$2"
}
default() { # default KEY VALUE: set KEY unless it has a value
    [[ -n "${value[$1]:-}" ]] || put "$1" "$2"
}
secret() { od -An -tx1 -N18 /dev/urandom | tr -d ' \n'; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# a port not in use now and not already chosen in this file
free_port() {
    local want="$1" p taken=" ${value[CODERM_PG_PORT]:-} ${value[CODERM_MQ_PORT]:-} ${value[CODERM_MQ_ADMIN_PORT]:-} ${value[CODERM_GATEWAY_PORT]:-} "
    if port_free "$want" && [[ "$taken" != *" $want "* ]]; then
        echo "$want"
        return 0
    fi
    for ((p = 20000 + want % 10000; p < 65000; p += 1)); do
        if port_free "$p" && [[ "$taken" != *" $p "* ]]; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found for $want" >&2
    exit 1
}

default COMPOSE_PROJECT_NAME coderm
case "$images" in
official)
    put CODERM_IMAGES official
    put CODERM_SERVICE_IMAGE coderm:latest
    put CODERM_POSTGRES_IMAGE postgres:16
    put CODERM_RABBITMQ_IMAGE rabbitmq:3-management
    ;;
offline) put CODERM_IMAGES offline ;;
esac
for key in "${!set_now[@]}"; do
    put "$key" "${set_now[$key]}"
done
default CODERM_SANDBOX_IMAGE coderm-sandbox:latest
default POSTGRES_USER coderm
default POSTGRES_DB coderm
default POSTGRES_PASSWORD "$(secret)"
default RABBITMQ_DEFAULT_USER coderm
default RABBITMQ_DEFAULT_VHOST coderm
default RABBITMQ_DEFAULT_PASS "$(secret)"
[[ -n "${value[CODERM_PG_PORT]:-}" ]] || put CODERM_PG_PORT "$(free_port 5432)"
[[ -n "${value[CODERM_MQ_PORT]:-}" ]] || put CODERM_MQ_PORT "$(free_port 5672)"
[[ -n "${value[CODERM_MQ_ADMIN_PORT]:-}" ]] || put CODERM_MQ_ADMIN_PORT "$(free_port 15672)"
[[ -n "${value[CODERM_GATEWAY_PORT]:-}" ]] || put CODERM_GATEWAY_PORT "$(free_port 8700)"

mkdir -p "$(dirname "$file")"
tmp="$(mktemp "$file.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
{
    echo "# compose's env file: written by deploy/images/compose-env.sh (make images);"
    echo "# the passwords were made on first run and are kept. Mode 600, not in git."
    for key in "${order[@]}"; do
        printf '%s=%s\n' "$key" "${value[$key]}"
    done
} >"$tmp"
mv -f "$tmp" "$file"
trap - EXIT
chmod 600 "$file"
echo "[images] wrote $file (images: ${value[CODERM_IMAGES]:-official defaults}; ports: postgres ${value[CODERM_PG_PORT]}, rabbitmq ${value[CODERM_MQ_PORT]}/${value[CODERM_MQ_ADMIN_PORT]}, gateway ${value[CODERM_GATEWAY_PORT]})"
