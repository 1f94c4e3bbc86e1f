#!/usr/bin/env bash
# Build the sandbox image offline (no container registry needed), idempotently.
#
#   1. If the base image is missing, make a minimal Debian bookworm root file system
#      with python3, numpy and pandas (Debian's packages) by debootstrap (default
#      Debian archive of debootstrap itself) and `docker import` it. Its tag is
#      derived from the suite, variant and package list (coderm-sandbox-base:
#      bookworm-<sha256 prefix>), so a changed package list makes a new base.
#   2. Build coderm-sandbox:latest FROM that base with sandbox/runner.py and the
#      package sandbox/coderm_runner/ in /opt/coderm, using the classic builder so
#      nothing is pulled. The image is labelled with the sha256 of the runner's
#      sources and of Dockerfile.offline and with the base image's id; the build is
#      skipped when all three are unchanged.
#
# Run as root (debootstrap needs it). Environment overrides:
#   CODERM_SANDBOX_IMAGE (default coderm-sandbox:latest)
#   CODERM_SANDBOX_BASE  (default coderm-sandbox-base:bookworm-<recipe sha256 prefix>)
#   FORCE=1              rebuild the final image even if the labels match
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${CODERM_SANDBOX_IMAGE:-coderm-sandbox:latest}"
suite=bookworm
variant=minbase
# what candidate code may import beyond the standard library (CodeRM's executor has
# numpy and pandas); the base image's tag changes with this list
packages=python3,python3-numpy,python3-pandas
recipe_sha="$(printf '%s\n' "$suite" "$variant" "$packages" | sha256sum | cut -c1-12)"
base="${CODERM_SANDBOX_BASE:-coderm-sandbox-base:$suite-$recipe_sha}"
runner="$here/runner.py"
package="$here/coderm_runner"
dockerfile="$here/Dockerfile.offline"

log() { printf '[build.sh] %s\n' "$*"; }

command -v docker >/dev/null || { log "docker is not installed"; exit 1; }
[[ -f "$runner" && -f "$package/__init__.py" ]] || { log "missing $runner or $package"; exit 1; }
[[ -f "$dockerfile" ]] || { log "missing $dockerfile"; exit 1; }

tmp=""
cleanup() {
    if [[ -n "$tmp" && -d "$tmp" ]]; then
        # debootstrap may leave proc/sys mounted if it failed half-way
        for m in proc sys dev/pts; do
            mountpoint -q "$tmp/rootfs/$m" 2>/dev/null && umount -l "$tmp/rootfs/$m" || true
        done
        rm -rf --one-file-system "$tmp"
    fi
}
trap cleanup EXIT

# ---- 1. base image -------------------------------------------------------------
if docker image inspect "$base" >/dev/null 2>&1; then
    log "base image $base present, not rebuilding it"
else
    command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
    [[ $EUID -eq 0 ]] || { log "building the base image needs root (debootstrap)"; exit 1; }
    tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/coderm-rootfs.XXXXXX")"
    log "debootstrap --variant=$variant --include=$packages $suite $tmp/rootfs"
    start=$SECONDS
    debootstrap --variant="$variant" --include="$packages" "$suite" "$tmp/rootfs"
    # trim what a sandbox never needs
    rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb \
        "$tmp/rootfs/var/lib/apt/lists/"* \
        "$tmp/rootfs/usr/share/doc" "$tmp/rootfs/usr/share/man" \
        "$tmp/rootfs/usr/share/locale" "$tmp/rootfs/usr/share/info"
    log "importing root file system as $base"
    tar --numeric-owner -C "$tmp/rootfs" -c . \
        | docker import \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'CMD ["/bin/bash"]' \
            -c "LABEL coderm.base.packages=$packages" \
            - "$base" >/dev/null
    cleanup
    tmp=""
    log "base image $base built in $((SECONDS - start)) s"
fi

# ---- 2. final image --------------------------------------------------------------
# the runner's sources, in a fixed order: names and contents
sources=("$runner" "$package"/*.py)
runner_sha="$(for f in "${sources[@]}"; do basename "$f"; cat "$f"; done | sha256sum | cut -d' ' -f1)"
dockerfile_sha="$(sha256sum "$dockerfile" | cut -d' ' -f1)"
base_id="$(docker image inspect -f '{{.Id}}' "$base")"

current() {
    docker image inspect -f "{{index .Config.Labels \"$1\"}}" "$image" 2>/dev/null || true
}

if [[ "${FORCE:-0}" != 1 \
    && "$(current coderm.runner.sha256)" == "$runner_sha" \
    && "$(current coderm.dockerfile.sha256)" == "$dockerfile_sha" \
    && "$(current coderm.base.id)" == "$base_id" ]]; then
    log "image $image up to date (runner sha256 $runner_sha), nothing to do"
    exit 0
fi

old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/coderm-build.XXXXXX")"
install -m 0644 "$runner" "$tmp/runner.py"
install -d "$tmp/coderm_runner"
install -m 0644 "$package"/*.py "$tmp/coderm_runner/"
install -m 0644 "$dockerfile" "$tmp/Dockerfile"
log "building $image FROM $base (runner sha256 $runner_sha)"
# classic builder: uses the local base image and never tries to pull it
if ! DOCKER_BUILDKIT=0 docker build --quiet \
    --build-arg "BASE=$base" \
    --label "coderm.runner.sha256=$runner_sha" \
    --label "coderm.dockerfile.sha256=$dockerfile_sha" \
    --label "coderm.base.id=$base_id" \
    -t "$image" "$tmp" >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    log "docker build failed"
    exit 1
fi
log "built $image: $(docker image inspect -f '{{.Id}} {{.Size}} bytes' "$image")"
new_id="$(docker image inspect -f '{{.Id}}' "$image")"
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    # drop the superseded image unless a container still uses it
    docker image rm "$old_id" >/dev/null 2>&1 && log "removed previous image $old_id" || true
fi
