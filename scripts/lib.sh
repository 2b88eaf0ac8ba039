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
