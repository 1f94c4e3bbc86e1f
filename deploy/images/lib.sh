# shellcheck shell=bash
# Shared functions of deploy/images/*.sh. Source it; don't run it.
#
# Images are built as sandbox/build.sh builds the sandbox image: a Debian root file
# system made by debootstrap and `docker import`ed (the base), then `docker build`
# with the classic builder on top of it, so nothing is ever pulled from a registry.
# Every image is tagged with a hash of its inputs, and a build is skipped when an
# image with that tag exists.

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGES_DIR/../.." && pwd)"
# where the Python wheels the service image installs are kept between builds
# shellcheck disable=SC2034 # used by build.sh
IMAGES_CACHE="${CODERM_IMAGES_CACHE:-/var/cache/coderm/images}"

# The base every image starts from: one debootstrap of this suite with these packages
# (the union of what the three images need), imported once and shared by them as a
# common layer. Its tag is a hash of the suite, variant and package list.
BASE_SUITE=bookworm
BASE_VARIANT=minbase
BASE_PACKAGES=(
    ca-certificates
    python3
    python3-venv
    postgresql
    rabbitmq-server
)

img_log() { printf '[images] %s\n' "$*"; }
img_die() {
    printf '[images] ERROR: %s\n' "$*" >&2
    exit 1
}

# sha12 < DATA: the first 12 hex digits of DATA's sha256.
sha12() { sha256sum | cut -c1-12; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# debian_mirror SUITE: the Debian archive this host's apt uses for SUITE (deb822
# .sources stanzas or one-line sources.list entries), empty if none is found, in which
# case debootstrap uses its own default.
debian_mirror() {
    local suite="$1" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        # one stanza a paragraph: print its first URI if its Suites hold SUITE exactly
        awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uri = ""; ok = 0; deb = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^[Tt]ypes:/ && $i ~ /(^|[ \t:])deb([ \t]|$)/) deb = 1
                    if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
                    if ($i ~ /^Suites:/) {
                        n = split($i, s, /[ \t]+/)
                        for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1
                    }
                }
                if (deb && ok && uri != "") { print uri; exit }
            }' "$f"
    done | head -n 1 | grep . && return 0
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
    done | head -n 1
    return 0
}

# base_image: the base image's tag (suite + variant + package list).
base_image() {
    local key
    key="$(printf '%s\n' "$BASE_SUITE" "$BASE_VARIANT" "${BASE_PACKAGES[@]}" | sha12)"
    echo "${CODERM_IMAGES_BASE:-coderm-image-base:$BASE_SUITE-$key}"
}

_img_tmp=""
_img_cleanup() {
    if [[ -n "$_img_tmp" && -d "$_img_tmp" ]]; then
        local m
        for m in proc sys dev/pts dev; do
            if mountpoint -q "$_img_tmp/rootfs/$m" 2>/dev/null; then
                umount -l "$_img_tmp/rootfs/$m" || true
            fi
        done
        rm -rf --one-file-system "$_img_tmp"
    fi
    _img_tmp=""
}

# ensure_base: build the base image unless it exists. debootstrap makes a minimal
# root from this host's Debian mirror; the packages are then installed by apt inside
# it with daemons kept from starting (policy-rc.d) and without PostgreSQL's default
# cluster (the postgres image's entrypoint makes its own data directory).
ensure_base() {
    local base mirror start list
    base="$(base_image)"
    if image_exists "$base"; then
        img_log "base image $base present"
        return 0
    fi
    command -v debootstrap >/dev/null || img_die "debootstrap is not installed"
    [[ $EUID -eq 0 ]] || img_die "building the base image needs root (debootstrap, chroot)"
    mirror="$(debian_mirror "$BASE_SUITE")"
    start=$SECONDS
    trap _img_cleanup EXIT
    _img_tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/coderm-image-rootfs.XXXXXX")"
    local root="$_img_tmp/rootfs"
    img_log "debootstrap --variant=$BASE_VARIANT $BASE_SUITE ${mirror:-(the default mirror of debootstrap)}"
    # shellcheck disable=SC2086 # mirror is one word or nothing
    debootstrap --variant="$BASE_VARIANT" "$BASE_SUITE" "$root" $mirror >"$_img_tmp/debootstrap.log" 2>&1 ||
        {
            tail -n 30 "$_img_tmp/debootstrap.log" >&2
            img_die "debootstrap failed"
        }
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/etc/postgresql-common/createcluster.d"
    echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.d/coderm.conf"
    printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n' \
        >"$root/etc/dpkg/dpkg.cfg.d/coderm-nodoc"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc"
    list="${BASE_PACKAGES[*]}"
    img_log "apt-get install $list (in the new root)"
    if ! chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $list" \
        >"$_img_tmp/apt.log" 2>&1 </dev/null; then
        tail -n 30 "$_img_tmp/apt.log" >&2
        img_die "installing packages into the base failed"
    fi
    chroot "$root" apt-get clean >/dev/null
    umount "$root/proc"
    # no daemon has been started; nothing of the build host stays in the image
    rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/log/"*.log \
        "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info"
    img_log "importing the root file system as $base"
    tar --numeric-owner -C "$root" -c . |
        docker import \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'ENV LANG=C.UTF-8' \
            -c 'CMD ["/bin/bash"]' \
            -c "LABEL coderm.base.suite=$BASE_SUITE coderm.base.packages=${list// /,}" \
            - "$base" >/dev/null
    _img_cleanup
    trap - EXIT
    img_log "base image $base built in $((SECONDS - start)) s"
}

# tree_hash PATH...: a hash of the files under PATHs (relative to the repo), names and
# contents in a fixed order, caches and bytecode left out.
tree_hash() {
    (
        cd "$REPO_ROOT" || exit 1
        find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.mypy_cache/*' \
            -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

# build_image TAG CONTEXT: `docker build` CONTEXT (holding its Dockerfile) as TAG with
# the classic builder, which uses the local base and never pulls, and no network (its
# RUN steps need none: the wheels come in the context).
build_image() {
    local tag="$1" ctx="$2" start=$SECONDS
    img_log "building $tag"
    if ! DOCKER_BUILDKIT=0 docker build --network none --label "coderm.image.tag=$tag" -t "$tag" "$ctx" \
        >"$ctx.build.log" 2>&1; then
        tail -n 40 "$ctx.build.log" >&2
        img_die "docker build of $tag failed (log: $ctx.build.log)"
    fi
    rm -f "$ctx.build.log"
    img_log "built $tag in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
}

# ensure_compose: COMPOSE=(the Docker Compose command): the `docker compose` plugin
# where this host's Docker has one, else Debian's docker-compose (1.29, Python), which
# is installed on first use.
# shellcheck disable=SC2034 # COMPOSE is the caller's
ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
        return 0
    fi
    if ! command -v docker-compose >/dev/null 2>&1; then
        # shellcheck source=deploy/local/lib.sh
        (source "$REPO_ROOT/deploy/local/lib.sh" && need_root && ensure_packages docker-compose) >&2
    fi
    COMPOSE=(docker-compose)
}

# prune_old REPOSITORY KEEP: remove REPOSITORY's images other than the tag KEEP (the
# ones an earlier build made from other inputs) that have the same suffix ("-vllm" or
# none); an image a container still uses stays.
prune_old() {
    local repo="$1" keep="$2" tag suffix="${2##*[0-9a-f]}"
    for tag in $(docker images "$repo" --format '{{.Tag}}'); do
        [[ "$tag" != "$keep" && "${tag##*[0-9a-f]}" == "$suffix" ]] || continue
        if docker image rm "$repo:$tag" >/dev/null 2>&1; then
            img_log "removed the superseded image $repo:$tag"
        fi
    done
}
