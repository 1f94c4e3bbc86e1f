#!/usr/bin/env bash
# Debian's chromium, for viewing `coderm dashboard` pages headless (screenshots, DOM
# dumps) in tests/integration/test_dashboard.py. Installs the package (and a font, so
# that text renders) if missing; idempotent.
#
#   deploy/local/chromium.sh            ensure the packages; print the browser's path last
#   deploy/local/chromium.sh path       print the browser's path (exit 1 if missing)
#
# Run it as root (apt-get) the first time; later calls only check.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM_PACKAGES=(chromium fonts-dejavu-core)

chromium_path() {
    command -v chromium 2>/dev/null || {
        [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium
    }
}

case "${1:-ensure}" in
ensure)
    if ! pkg_installed chromium || ! pkg_installed fonts-dejavu-core; then
        need_root
    fi
    ensure_packages "${CHROMIUM_PACKAGES[@]}" >&2
    found="$(chromium_path)" || die "chromium is installed but not on PATH"
    "$found" --version >&2 || die "$found does not run"
    echo "$found"
    ;;
path)
    chromium_path || exit 1
    ;;
-h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    ;;
*) die "unknown argument: $1 (try --help)" ;;
esac
