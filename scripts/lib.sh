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

# The Debian packages tiller needs: git and python3 for its tools and examples (python3-venv for
# the engine's test fixtures), cmake and
# libclang for building the embedded llama.cpp engine, bubblewrap for the command sandbox,
# strace and iproute2 for the sandbox and egress tests, tmux for the front end's test.
TILLER_APT_PACKAGES=(git python3 python3-venv cmake libclang-dev bubblewrap strace iproute2 tmux)

# need_mcp_peers: the MCP servers the tests run against, from their registries, under
# target/peers (gitignored): the reference server-everything (npm) and mcp-server-time (PyPI).
# Quick when they are there.
need_mcp_peers() {
    local peers=target/peers
    command -v npm >/dev/null || need_apt nodejs npm
    python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv
    if [ ! -x "$peers/npm/node_modules/.bin/mcp-server-everything" ]; then
        echo "installing: @modelcontextprotocol/server-everything" >&2
        npm install --prefix "$peers/npm" --no-audit --no-fund --silent \
            @modelcontextprotocol/server-everything@2026.8.31 >&2
    fi
    if [ ! -x "$peers/venv/bin/mcp-server-time" ]; then
        echo "installing: mcp-server-time" >&2
        python3 -m venv "$peers/venv"
        "$peers/venv/bin/pip" install --quiet mcp-server-time==2026.10.19 >&2
    fi
}

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
