#!/bin/sh
# Run in the executor pod's init container, from the sandbox image (coderm-sandbox):
# copy that image's own file system into the shared volume $1 as the bwrap backend's
# root (CODERM_SANDBOX__ROOTFS_DIR: rootfs/ and env), as deploy/local/lib.sh's
# ensure_sandbox_rootfs does with `docker export` on a host. Runs unprivileged: files
# only root may read (none that the runner needs) are left out.
set -eu
dest="$1"
mkdir -p "$dest/rootfs"
# one file system: leaves out /proc, /sys, /dev and every volume (this one included)
tar --one-file-system -C / -cf - . 2>/dev/null | tar -C "$dest/rootfs" -xf - 2>/dev/null || true
test -f "$dest/rootfs/opt/coderm/runner.py" || { echo "no runner in the sandbox image" >&2; exit 1; }
mkdir -p "$dest/rootfs/proc" "$dest/rootfs/sys" "$dest/rootfs/dev" "$dest/rootfs/tmp"
# what Docker gives a container without network
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dest/rootfs/etc/hosts"
echo sandbox >"$dest/rootfs/etc/hostname"
: >"$dest/rootfs/etc/resolv.conf"
# the image's environment (its ENV lines), nothing of the pod's
for name in PATH LANG PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED \
    OPENBLAS_NUM_THREADS OMP_NUM_THREADS MKL_NUM_THREADS; do
    eval "value=\${$name-}"
    [ -n "$value" ] && printf '%s=%s\n' "$name" "$value"
done >"$dest/env"
touch "$dest/complete"
echo "sandbox root file system ready in $dest"
