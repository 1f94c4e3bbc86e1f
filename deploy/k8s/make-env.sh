#!/usr/bin/env bash
# Write deploy/k8s/base/coderm.env, the env file the coderm-env Secret is generated
# from (kustomize secretGenerator): the URLs of your PostgreSQL and RabbitMQ, their
# passwords included. The file is git-ignored and written with mode 600; it is never
# in the repository, and no manifest holds a password.
#
#   CODERM_DATABASE__URL=postgresql+asyncpg://coderm:PASSWORD@HOST:5432/coderm \
#   CODERM_BROKER__URL=amqp://coderm:PASSWORD@HOST:5672/coderm \
#       bash deploy/k8s/make-env.sh [--force] [KEY=VALUE ...]
#
# Either URL missing from the environment is asked for on the terminal (not echoed).
# KEY=VALUE adds any other setting (CODERM_OPENAI__API_KEY=..., ...). An existing file
# is kept unless --force.
set -euo pipefail

out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/base/coderm.env"
force=0
extra=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        *=*) extra+=("$arg") ;;
        *) echo "usage: $0 [--force] [KEY=VALUE ...]" >&2; exit 2 ;;
    esac
done
if [[ -e "$out" && $force -eq 0 ]]; then
    echo "$out exists (use --force to replace it)" >&2
    exit 1
fi
ask() {
    local name="$1" value="${!1:-}"
    if [[ -z "$value" ]]; then
        [[ -t 0 ]] || { echo "$name is not set" >&2; exit 1; }
        read -r -s -p "$name: " value
        echo >&2
    fi
    [[ -n "$value" && "$value" != *$'\n'* ]] || { echo "$name is empty" >&2; exit 1; }
    printf '%s=%s\n' "$name" "$value"
}
umask 077
tmp="$(mktemp "$out.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
    ask CODERM_DATABASE__URL
    ask CODERM_BROKER__URL
    for kv in "${extra[@]}"; do printf '%s\n' "$kv"; done
} >"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "wrote $out (mode 600)"
