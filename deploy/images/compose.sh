#!/usr/bin/env bash
# Docker Compose for compose.yaml, on any host: the `docker compose` plugin where this
# host's Docker has it, else Debian's docker-compose (installed on first use).
#
#   bash deploy/images/compose.sh up -d --scale executor=3
#   bash deploy/images/compose.sh --version
#
# Arguments go to compose as they are; it runs in the repository, so it reads
# compose.yaml and the env file .env that deploy/images/compose-env.sh writes.
set -euo pipefail

# shellcheck source=deploy/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_compose
cd "$REPO_ROOT"
exec "${COMPOSE[@]}" "$@"
