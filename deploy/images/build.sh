#!/usr/bin/env bash
# Build coderm's container images offline (no container registry), idempotently, and
# write their names into compose's env file (`make images` runs this).
#
#   bash deploy/images/build.sh [--vllm] [--env-file PATH | --no-env-file]
#
# The images, each tagged with a hash of its inputs and built only when no image of
# that tag exists:
#   coderm-image-base:bookworm-<hash>  debootstrap of Debian bookworm with python3,
#       postgresql and rabbitmq-server (from this host's Debian mirror), imported
#       once and the common base of the three below (hash: suite, packages)
#   coderm-service:<hash>   the five services, the migrations and the coderm command:
#       Debian's python3, a venv with the project installed by pip (hash: the base,
#       the project's sources and pyproject.toml, the Dockerfile, the extra)
#   coderm-postgres:<hash>  PostgreSQL, entry point deploy/images/postgres/
#   coderm-rabbitmq:<hash>  RabbitMQ with the management plugin, deploy/images/rabbitmq/
# and the sandbox image (sandbox/build.sh), which the composed executors run.
#
# The Python dependencies are fetched from PyPI by this host's pip (its own index,
# proxy and certificate settings), as wheels kept in /var/cache/coderm/images/wheels/
# per requirement list; the image installs them with no network.
#
# Options and environment:
#   --vllm, CODERM_IMAGES_VLLM=1   add the `vllm` extra (the generator's in-process
#                                  engine, for GPU hosts: gigabytes); off by default
#   --env-file PATH                the env file to update (default: .env in the repo,
#                                  which compose reads), see deploy/images/compose-env.sh
#   --no-env-file                  only build, print the image names
# Run as root (debootstrap and chroot need it, the first time).
set -euo pipefail

# shellcheck source=deploy/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vllm="${CODERM_IMAGES_VLLM:-0}"
env_file="$REPO_ROOT/.env"
write_env=1
while (($#)); do
    case "$1" in
    --vllm) vllm=1 ;;
    --env-file)
        [[ $# -ge 2 ]] || img_die "--env-file needs a path"
        env_file="$2"
        shift
        ;;
    --env-file=*) env_file="${1#*=}" ;;
    --no-env-file) write_env=0 ;;
    -h | --help)
        sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) img_die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
[[ "$vllm" == 0 || "$vllm" == 1 ]] || img_die "CODERM_IMAGES_VLLM must be 0 or 1, got '$vllm'"

command -v docker >/dev/null || img_die "docker is not installed"
timeout 20 docker info >/dev/null 2>&1 || img_die "the Docker engine does not answer"
started=$SECONDS
work="$(mktemp -d "${TMPDIR:-/var/tmp}/coderm-images.XXXXXX")"
trap 'rm -rf --one-file-system "$work"' EXIT

# ---- the base ------------------------------------------------------------------------
ensure_base
base="$(base_image)"
base_id="$(docker image inspect -f '{{.Id}}' "$base")"

# context DIR: a fresh build context with a Dockerfile naming the base.
new_context() {
    local ctx="$work/$1"
    mkdir -p "$ctx"
    echo "$ctx"
}

# build_from_base TAG CONTEXT: build CONTEXT on the base, unless TAG exists.
build_from_base() {
    local tag="$1" ctx="$2"
    # the classic builder takes the base from ARG BASE; the tag names the base's id
    sed -i "s|^ARG BASE=.*|ARG BASE=$base|" "$ctx/Dockerfile"
    build_image "$tag" "$ctx"
}

# ---- PostgreSQL and RabbitMQ ---------------------------------------------------------
declare -A built=()
for name in postgres rabbitmq; do
    tag="coderm-$name:$({
        echo "$base_id"
        tree_hash "deploy/images/$name"
    } | sha12)"
    built[$name]="$tag"
    if image_exists "$tag"; then
        img_log "$tag present"
        continue
    fi
    ctx="$(new_context "$name")"
    cp -p "$IMAGES_DIR/$name/"* "$ctx/"
    build_from_base "$tag" "$ctx"
    prune_old "coderm-$name" "${tag#*:}"
done

# ---- the service image ---------------------------------------------------------------
# requirements: the project's dependencies (and the extra), and what the editable
# install of the project itself needs
requirements() {
    /usr/bin/python3 - "$REPO_ROOT/pyproject.toml" "$vllm" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
lines = list(project["dependencies"])
if sys.argv[2] == "1":
    lines += project["optional-dependencies"]["vllm"]
lines += ["setuptools>=68", "wheel"]
print("\n".join(lines))
PY
}

# ensure_wheels REQUIREMENTS_FILE: the directory of wheels for these requirements
# (kept per requirement list; fetched once by this host's pip, with Debian's python3,
# the image's Python).
ensure_wheels() {
    local reqs="$1" key dir venv
    key="$({
        cat "$reqs"
        /usr/bin/python3 -c 'import sys, sysconfig; print(sys.version_info[:2], sysconfig.get_platform())'
    } | sha12)"
    dir="$IMAGES_CACHE/wheels/$key"
    if [[ -f "$dir/complete" ]]; then
        img_log "wheels present ($dir)" >&2
        echo "$dir"
        return 0
    fi
    venv="$IMAGES_CACHE/pip-venv"
    if [[ ! -x "$venv/bin/pip" ]]; then
        img_log "creating $venv (Debian's python3, for pip wheel)" >&2
        mkdir -p "$IMAGES_CACHE"
        /usr/bin/python3 -m venv "$venv" >&2
    fi
    img_log "fetching wheels for the service image into $dir (pip wheel)" >&2
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    if ! "$venv/bin/pip" wheel -qq --disable-pip-version-check --wheel-dir "$dir.tmp" \
        -r "$reqs" </dev/null >&2; then
        img_die "pip wheel failed"
    fi
    cp "$reqs" "$dir.tmp/requirements.txt"
    touch "$dir.tmp/complete"
    rm -rf "$dir"
    mv -T "$dir.tmp" "$dir"
    echo "$dir"
}

app_paths=(services shared sandbox migrations data/demo alembic.ini pyproject.toml)
requirements >"$work/requirements.txt"
suffix=""
((vllm)) && suffix="-vllm"
svc_tag="coderm-service:$({
    echo "$base_id"
    cat "$work/requirements.txt"
    tree_hash deploy/images/service "${app_paths[@]}"
} | sha12)$suffix"
built[service]="$svc_tag"
if image_exists "$svc_tag"; then
    img_log "$svc_tag present"
else
    wheels="$(ensure_wheels "$work/requirements.txt")"
    ctx="$(new_context service)"
    cp -p "$IMAGES_DIR/service/Dockerfile" "$ctx/"
    # hard links where the cache shares the file system: no copy of the wheels
    cp -al "$wheels" "$ctx/wheels" 2>/dev/null || cp -a "$wheels" "$ctx/wheels"
    rm -f "$ctx/wheels/complete"
    mkdir "$ctx/app"
    (cd "$REPO_ROOT" && tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
        "${app_paths[@]}") | tar -C "$ctx/app" -x
    build_from_base "$svc_tag" "$ctx"
    prune_old coderm-service "${svc_tag#*:}"
fi

# ---- the sandbox image ---------------------------------------------------------------
bash "$REPO_ROOT/sandbox/build.sh" | sed 's/^/[images] /'

img_log "images ready in $((SECONDS - started)) s:"
printf '  CODERM_SERVICE_IMAGE=%s\n  CODERM_POSTGRES_IMAGE=%s\n  CODERM_RABBITMQ_IMAGE=%s\n' \
    "${built[service]}" "${built[postgres]}" "${built[rabbitmq]}"
if ((write_env)); then
    bash "$IMAGES_DIR/compose-env.sh" --file "$env_file" --images offline \
        "CODERM_SERVICE_IMAGE=${built[service]}" \
        "CODERM_POSTGRES_IMAGE=${built[postgres]}" \
        "CODERM_RABBITMQ_IMAGE=${built[rabbitmq]}"
fi
