# Shared by the scripts in this folder; source it, do not run it.

# need_apt PKG...: installs the Debian packages among PKG that are missing.
need_apt() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Debian packages tiller needs: git and python3 for its tools and examples, cmake and
# libclang for building the embedded llama.cpp engine, bubblewrap for the command sandbox,
# strace and iproute2 for the sandbox and egress tests, tmux for the front end's test.
TILLER_APT_PACKAGES=(git python3 cmake libclang-dev bubblewrap strace iproute2 tmux)

# need_npm DIR PACKAGE VERSION: installs PACKAGE at VERSION from npm under DIR/node_modules,
# and node with npm from Debian where they are missing; quick when all is there already.
need_npm() {
    local dir=$1 package=$2 version=$3
    command -v node >/dev/null && command -v npm >/dev/null || need_apt nodejs npm
    grep -qs "\"version\": \"$version\"" "$dir/node_modules/$package/package.json" && return 0
    echo "installing: $package@$version (npm) into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "$package@$version"
}
