#!/usr/bin/env bash
# realserver.sh: the real-server side of LVS direct routing (DR), on modern iproute2.
#
#   scripts/realserver.sh start|stop|status VIP...
#
# start   puts each VIP on `lo` (IPv4 as /32, IPv6 as /128 nodad) and sets
#         arp_ignore=1, arp_announce=2 on `all` and `lo`, so this host accepts packets
#         addressed to the VIP but never answers ARP for it (nor NDP: Linux answers a
#         neighbour solicitation only for addresses on the interface it arrived on, and
#         the VIP lives on `lo`). Idempotent: running it twice changes nothing.
# stop    removes each VIP from `lo`; when no VIP is left on `lo` it sets the four ARP
#         sysctls back to 0. Idempotent: removing an absent VIP is not an error.
# status  prints each VIP's state and the ARP sysctls; exits 0 when every VIP is on
#         `lo` and the sysctls are set, 3 otherwise.
#
# Exit codes: 0 ok, 3 (status) not fully configured, 64 bad usage or invalid address,
# 1 any other failure. Acts on the network namespace it runs in (the lab runs it with
# `ip netns exec`). This is the seed blog's `realserver` script; the host route it
# added is no longer needed (the kernel adds a local route for an address on lo).
set -euo pipefail

readonly EX_USAGE=64
readonly EX_NOTCONFIGURED=3
readonly SYSCTL_DIR=/proc/sys/net/ipv4/conf

usage() {
    cat >&2 <<EOF
usage: ${0##*/} start|stop|status VIP...
  start   put each VIP on lo (/32, IPv6 /128 nodad); arp_ignore=1 arp_announce=2 on all and lo
  stop    remove each VIP from lo; sysctls back to 0 once no VIP remains on lo
  status  show each VIP and the sysctls; exit 0 if all configured, else 3
VIP is an IPv4 or IPv6 address without prefix length, e.g. 192.168.5.188 or fd99::100
EOF
    exit "$EX_USAGE"
}

die_usage() {
    echo "${0##*/}: $*" >&2
    usage
}

is_ipv4() {
    local a=$1 o
    [[ $a =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
    for o in "${BASH_REMATCH[@]:1}"; do
        # No leading zeros (ambiguous: octal to some tools), each octet <= 255.
        [[ $o =~ ^(0|[1-9][0-9]*)$ ]] && ((10#$o <= 255)) || return 1
    done
}

is_ipv6() {
    local a=$1 head tail n=0 g
    local -a groups=()
    [[ $a =~ ^[0-9A-Fa-f:.]+$ && $a == *:* ]] || return 1
    # An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
    if [[ $a == *.* ]]; then
        tail=${a##*:}
        is_ipv4 "$tail" || return 1
        a="${a%:*}:0:0"
    fi
    case $a in
    *::*::* | *:::*) return 1 ;;
    esac
    if [[ $a == *::* ]]; then
        head=${a%%::*}
        tail=${a#*::}
        [[ -n $head ]] && IFS=: read -r -a groups <<<"$head" && n=${#groups[@]}
        for g in "${groups[@]}"; do [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1; done
        groups=()
        [[ -n $tail ]] && IFS=: read -r -a groups <<<"$tail" && n=$((n + ${#groups[@]}))
        for g in "${groups[@]}"; do [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1; done
        ((n <= 7)) || return 1
    else
        [[ $a != :* && $a != *: ]] || return 1
        IFS=: read -r -a groups <<<"$a"
        ((${#groups[@]} == 8)) || return 1
        for g in "${groups[@]}"; do [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1; done
    fi
}

# prefix_of VIP -> "VIP/32" or "VIP/128"
prefix_of() {
    if is_ipv4 "$1"; then echo "$1/32"; else echo "$1/128"; fi
}

family_of() {
    if is_ipv4 "$1"; then echo -4; else echo -6; fi
}

# True when exactly this VIP (as a host prefix) is on lo. `ip ... to` parses the
# address, so any spelling of an IPv6 address matches its canonical form.
vip_present() {
    local out
    out=$(ip "$(family_of "$1")" -o addr show dev lo to "$(prefix_of "$1")" 2>/dev/null) || return 1
    [[ -n $out ]]
}

# True when lo holds any address besides the loopback ones (127/8, ::1): a VIP.
any_vip_left() {
    local addrs
    addrs=$(ip -o addr show dev lo | awk '$4 !~ /^(127\.|::1\/)/ {print $4}')
    [[ -n $addrs ]]
}

set_arp_sysctls() {
    local ignore=$1 announce=$2 dev
    for dev in all lo; do
        echo "$ignore" >"$SYSCTL_DIR/$dev/arp_ignore"
        echo "$announce" >"$SYSCTL_DIR/$dev/arp_announce"
    done
}

sysctls_set() {
    local dev
    for dev in all lo; do
        [[ $(<"$SYSCTL_DIR/$dev/arp_ignore") == 1 ]] || return 1
        [[ $(<"$SYSCTL_DIR/$dev/arp_announce") == 2 ]] || return 1
    done
}

cmd_start() {
    local vip
    ip link set dev lo up
    # ARP suppression first, so there is no moment where the VIP is local and answered.
    set_arp_sysctls 1 2
    for vip in "$@"; do
        if vip_present "$vip"; then
            echo "VIP $vip: already on lo"
        elif is_ipv4 "$vip"; then
            ip -4 addr add "$vip/32" dev lo scope global
            echo "VIP $vip: added to lo as /32"
        else
            ip -6 addr add "$vip/128" dev lo nodad
            echo "VIP $vip: added to lo as /128"
        fi
    done
    echo "arp_ignore=1 arp_announce=2 on all and lo"
    echo "RealServer start OK"
}

cmd_stop() {
    local vip
    for vip in "$@"; do
        if vip_present "$vip"; then
            ip "$(family_of "$vip")" addr del "$(prefix_of "$vip")" dev lo
            echo "VIP $vip: removed from lo"
        else
            echo "VIP $vip: not on lo"
        fi
    done
    if any_vip_left; then
        echo "other VIPs remain on lo; ARP sysctls left as they are"
    else
        set_arp_sysctls 0 0
        echo "no VIP left on lo; arp_ignore=0 arp_announce=0 on all and lo"
    fi
    echo "RealServer stop OK"
}

cmd_status() {
    local vip ok=1 dev
    for vip in "$@"; do
        if vip_present "$vip"; then
            echo "VIP $vip: on lo"
        else
            echo "VIP $vip: NOT on lo"
            ok=0
        fi
    done
    for dev in all lo; do
        echo "$dev: arp_ignore=$(<"$SYSCTL_DIR/$dev/arp_ignore") arp_announce=$(<"$SYSCTL_DIR/$dev/arp_announce")"
    done
    if ! sysctls_set; then
        echo "ARP sysctls: NOT set (want arp_ignore=1 arp_announce=2 on all and lo)"
        ok=0
    fi
    if ((ok)); then
        echo "status: configured"
        return 0
    fi
    echo "status: NOT configured"
    return "$EX_NOTCONFIGURED"
}

main() {
    (($# >= 1)) || usage
    local cmd=$1 vip
    shift
    case $cmd in
    start | stop | status) ;;
    -h | --help | help)
        usage
        ;;
    *) die_usage "unknown command '$cmd'" ;;
    esac
    (($# >= 1)) || die_usage "$cmd needs at least one VIP"
    for vip in "$@"; do
        is_ipv4 "$vip" || is_ipv6 "$vip" || die_usage "invalid address '$vip'"
        case $vip in
        127.* | 0.0.0.0 | :: | ::1 | 0:0:0:0:0:0:0:0 | 0:0:0:0:0:0:0:1)
            die_usage "'$vip' is a loopback or unspecified address, not a VIP"
            ;;
        esac
    done
    "cmd_$cmd" "$@"
}

main "$@"
