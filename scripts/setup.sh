#!/usr/bin/env bash
# setup.sh: install what xlb's build, tests, lab and benchmarks need on Debian 12.
#
#   sudo scripts/setup.sh
#
# Idempotent: when every package is already installed it changes nothing (and does not
# run apt-get update). Installing nginx or keepalived may start their services in the
# root namespace; we only ever run them inside lab namespaces, so setup stops and
# disables any such service it finds running. The Rust toolchain is not installed here
# (use rustup, https://rustup.rs); setup checks that `cargo` is there and says so if not.
# Exit: 0 ready, 1 something missing or failed.
set -euo pipefail

readonly PACKAGES=(
    # build: libbpf-cargo compiles bpf/ with clang; libbpf-sys/libxdp-sys need the rest
    clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 make
    # lab and end-to-end tests
    iproute2 ethtool tcpdump iputils-ping procps curl socat python3
    # benchmarks and the baselines xlb is compared with
    netsniff-ng nginx-light libnginx-mod-stream keepalived wrk iperf3 tshark
)
readonly SERVICES=(nginx keepalived)

log() { echo "setup: $*"; }

missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ $status == installed ]] || echo "$p"
    done
}

# Without systemd: the service runs when its pid file names a live process of that
# daemon in *this* (the root) network namespace. Daemons that tests or the lab started
# inside their own namespaces are not ours to stop and are left alone.
root_service_pid() {
    local s=$1 pid f
    for f in "/run/$s.pid" "/var/run/$s.pid"; do
        [[ -r $f ]] || continue
        pid=$(<"$f")
        [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || continue
        [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */"$s" ]] || continue
        [[ $(readlink "/proc/$pid/ns/net") == "$(readlink /proc/self/ns/net)" ]] || continue
        echo "$pid"
        return 0
    done
    return 1
}

stop_services() {
    local s pid
    for s in "${SERVICES[@]}"; do
        if [[ -d /run/systemd/system ]]; then
            # Disable even when stopped, so a reboot does not start it in the root namespace.
            if systemctl is-enabled --quiet "$s" 2>/dev/null; then
                systemctl disable --quiet "$s" 2>/dev/null || true
                log "disabled the $s service (xlb runs it only inside lab namespaces)"
            fi
            if systemctl is-active --quiet "$s" 2>/dev/null; then
                systemctl stop "$s"
                log "stopped the $s service in the root namespace"
            fi
        elif pid=$(root_service_pid "$s"); then
            kill -TERM "$pid"
            log "stopped the $s service in the root namespace (pid $pid)"
        fi
    done
}

check_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        log "Rust: $(cargo --version)"
        return 0
    fi
    if [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        log "Rust: cargo is in ${HOME:-/root}/.cargo/bin but not on PATH; run: . \"\$HOME/.cargo/env\""
        return 0
    fi
    echo "setup: ERROR: cargo not found. Install the Rust toolchain with rustup" >&2
    echo "setup:        (https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh)" >&2
    return 1
}

main() {
    local -a missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "all ${#PACKAGES[@]} packages already installed"
    else
        if ((EUID != 0)); then
            echo "setup: missing packages: ${missing[*]}" >&2
            echo "setup: run as root to install them: sudo $0" >&2
            exit 1
        fi
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -qq update
        apt-get -qq install -y --no-install-recommends "${missing[@]}" >/dev/null
        mapfile -t missing < <(missing_packages)
        if ((${#missing[@]} != 0)); then
            echo "setup: ERROR: still missing after apt-get install: ${missing[*]}" >&2
            exit 1
        fi
        log "packages installed"
    fi
    if ((EUID == 0)); then
        stop_services
    fi
    check_cargo
    log "ready"
}

main "$@"
