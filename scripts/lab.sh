#!/usr/bin/env bash
# lab.sh: the xlb network-namespace lab (DESIGN.md §6): one L2 segment, a client, two
# directors and three LVS-DR real servers, IPv4 and IPv6.
#
#   scripts/lab.sh up                 build the lab (removes a stale lab of the same prefix)
#   scripts/lab.sh down               tear it down (idempotent)
#   scripts/lab.sh status             show namespaces, addresses, servers
#   scripts/lab.sh exec HOST CMD...   run CMD in HOST's namespace (c d1 d2 r1 r2 r3 sw)
#   scripts/lab.sh traffic [N4 [N6]]  curl the VIPs from the client N4/N6 times (default
#                                     20/10), print who answered, and check that replies
#                                     bypassed the director d1
#   scripts/lab.sh rs-stop|rs-start rN  stop / start real server rN's lab-httpd.py
#                                     (start waits until it answers; its log is appended)
#   scripts/lab.sh demo [--keep]      up, run target/release/xlb in d1 with a generated
#                                     config, traffic, SIGTERM xlb, down (unless --keep);
#                                     env XLB_BIN runs another binary with xlb's command
#                                     line (scripts/lab-fake-director.py: a Python stand-in)
#
# Env XLB_LAB: name prefix (default "xlb", [A-Za-z0-9_-], at most 10 characters), so
# several labs can exist at once. Namespaces are "$XLB_LAB-<host>"; pid files, logs and
# generated files live in /tmp/$XLB_LAB/.
# Env XLB_LAB_QUEUES: rx/tx queues of each director's veth pair (default 1; up to 16), so
# that a director can run one AF_XDP worker per queue (scripts/bench-pps.sh QUEUES=2).
#
# Topology. Namespace $P-sw holds bridge br0 and one veth end per host, named port-<host>
# (e.g. port-d1: capture there to see what the director sends and receives). In each
# host namespace the other end is eth0:
#
#   host  role        IPv4          IPv6       MAC (eth0)          bridge port MAC
#   c     client      10.99.0.10    fd99::10   02:99:00:00:00:10   02:99:00:00:01:10
#   d1    director    10.99.0.2     fd99::2    02:99:00:00:00:02   02:99:00:00:01:02
#   d2    director    10.99.0.3     fd99::3    02:99:00:00:00:03   02:99:00:00:01:03
#   r1    real server 10.99.0.11    fd99::11   02:99:00:00:00:11   02:99:00:00:01:11
#   r2    real server 10.99.0.12    fd99::12   02:99:00:00:00:12   02:99:00:00:01:12
#   r3    real server 10.99.0.13    fd99::13   02:99:00:00:00:13   02:99:00:00:01:13
#
# (The MAC's last byte spells the address's last decimal octet / IPv6 group.) Subnets
# 10.99.0.0/24 and fd99::/64; VIPs 10.99.0.100 and fd99::100. DAD is off in every
# namespace and addresses are added nodad, so they are usable at once.
#
# Real servers run scripts/realserver.sh start with both VIPs (VIP on lo, ARP
# suppression) and scripts/lab-httpd.py: HTTP/1.1 keep-alive on [::]:80 (body
# "<name>\n", header X-Real-Server), UDP echo on [::]:5353 ("<name> <payload>").
# The client reaches the VIPs on-link: whoever answers ARP/NDP for a VIP gets the
# traffic. Only an active director does (xlb adds the VIP to its eth0 when active);
# until then nothing answers. Directors have ip_forward=0.
# Checksum tx offload is off on the client's and the real servers' eth0, GRO is off on
# every bridge port (DESIGN.md §5).
set -euo pipefail

readonly EX_USAGE=64
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly SCRIPTS=$ROOT/scripts

P=${XLB_LAB:-xlb}
if [[ ! $P =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,9}$ ]]; then
    echo "lab.sh: XLB_LAB='$P' is not a valid prefix ([A-Za-z0-9_-], 1 to 10 characters)" >&2
    exit "$EX_USAGE"
fi
readonly P
readonly RUN=/tmp/$P
Q=${XLB_LAB_QUEUES:-1}
if [[ ! $Q =~ ^([1-9]|1[0-6])$ ]]; then
    echo "lab.sh: XLB_LAB_QUEUES='$Q' must be a number of queues from 1 to 16" >&2
    exit "$EX_USAGE"
fi
readonly Q

readonly VIP4=10.99.0.100 VIP6=fd99::100
readonly HOSTS=(c d1 d2 r1 r2 r3)
readonly REALS=(r1 r2 r3)
readonly ALL_NS=(sw c d1 d2 r1 r2 r3)
declare -rA OCTET=([c]=10 [d1]=2 [d2]=3 [r1]=11 [r2]=12 [r3]=13)
declare -rA ROLE=([c]=client [d1]=director [d2]=director [r1]="real server" [r2]="real server" [r3]="real server")

if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi
readonly PY

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "$EX_USAGE"
}

log() { echo "lab[$P]: $*"; }
die() {
    echo "lab[$P]: error: $*" >&2
    exit 1
}

ns() { echo "$P-$1"; }
ip4() { echo "10.99.0.${OCTET[$1]}"; }
ip6() { echo "fd99::${OCTET[$1]}"; }
mac() { printf '02:99:00:00:00:%02d' "${OCTET[$1]}"; }
port_mac() { printf '02:99:00:00:01:%02d' "${OCTET[$1]}"; }
nsx() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$@"
}
ns_exists() { [[ -e /run/netns/$(ns "$1") ]]; }

require_root() {
    ((EUID == 0)) || die "must run as root (network namespaces)"
}

valid_host() {
    local h
    for h in "${ALL_NS[@]}"; do [[ $1 == "$h" ]] && return 0; done
    return 1
}

# Write a value to a sysctl file inside a namespace (no procps needed).
nsysctl() {
    local h=$1 path=$2 val=$3
    nsx "$h" sh -c "echo $val > /proc/sys/$path"
}

# ---------------------------------------------------------------- down

# True while PID runs (a zombie, exited but not yet reaped, does not count).
alive() {
    local st
    [[ -r /proc/$1/stat ]] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# The pid in pid file F, if that process still is what we started: the file's name
# says what that was (NAME-httpd.pid, xlb.pid, tcpdump.pid).
pidfile_pid() {
    local f=$1 pid what
    pid=$(<"$f") || return 1
    case ${f##*/} in
    *-httpd.pid) what='lab-httpd\.py' ;;
    xlb.pid) what=' run --config ' ;;
    tcpdump.pid) what='^tcpdump ' ;;
    *) return 1 ;;
    esac
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    alive "$pid" || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") =~ $what ]] || return 1
    echo "$pid"
}

# SIGTERM the given pids, wait up to 3 s for all, SIGKILL what is left.
stop_pids() {
    local pid i left
    (($# > 0)) || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 30; i++)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
    return 0
}

# Stop the process a pid file names (if it still is ours) and remove the file.
kill_pidfile() {
    local pid
    if pid=$(pidfile_pid "$1"); then stop_pids "$pid"; fi
    rm -f "$1"
}

do_down() {
    local h f pid
    local -a pids=()
    if [[ -d $RUN ]]; then
        for f in "$RUN"/*.pid; do
            [[ -e $f ]] || continue
            pid=$(pidfile_pid "$f") && pids+=("$pid")
        done
    fi
    # Anything still inside our own namespaces was started in this lab (by a test or by
    # hand with `lab.sh exec`): end it too, by pid, so the namespaces really go away.
    for h in "${ALL_NS[@]}"; do
        ns_exists "$h" || continue
        for pid in $(ip netns pids "$(ns "$h")" 2>/dev/null || true); do pids+=("$pid"); done
    done
    stop_pids "${pids[@]}"
    for h in "${ALL_NS[@]}"; do
        if ns_exists "$h"; then ip netns del "$(ns "$h")" 2>/dev/null || true; fi
    done
    rm -rf "$RUN"
}

cmd_down() {
    require_root
    do_down
    log "down"
}

# ---------------------------------------------------------------- up

lab_exists() {
    local h
    [[ -d $RUN ]] && return 0
    for h in "${ALL_NS[@]}"; do ns_exists "$h" && return 0; done
    return 1
}

UP_DONE=0
up_cleanup() {
    if ((UP_DONE == 0)); then
        echo "lab[$P]: up failed; tearing the partial lab down" >&2
        do_down
    fi
}

do_up() {
    local h pid i ok c f
    for c in ip ethtool curl "$PY"; do
        command -v "$c" >/dev/null || die "'$c' not found (run scripts/setup.sh)"
    done
    if lab_exists; then
        log "removing a stale lab with prefix '$P'"
        do_down
    fi
    UP_DONE=0
    trap up_cleanup EXIT
    mkdir -p "$RUN"

    for h in "${ALL_NS[@]}"; do
        ip netns add "$(ns "$h")"
        nsx "$h" ip link set lo up
        if [[ $h == sw ]]; then
            # The switch is pure L2: no IPv6 on its ports (no RS/MLD noise).
            nsysctl "$h" net/ipv6/conf/all/disable_ipv6 1
            nsysctl "$h" net/ipv6/conf/default/disable_ipv6 1
        else
            # Before any interface exists here, so eth0 inherits the defaults.
            for f in all default; do
                nsysctl "$h" "net/ipv6/conf/$f/accept_dad" 0
                nsysctl "$h" "net/ipv6/conf/$f/dad_transmits" 0
                nsysctl "$h" "net/ipv6/conf/$f/router_solicitations" 0
                nsysctl "$h" "net/ipv6/conf/$f/accept_ra" 0
            done
        fi
    done

    ip -n "$(ns sw)" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$(ns sw)" link set br0 up
    # A real switch does not look at IP headers: keep netfilter off the bridge (new
    # namespaces may start with bridge-nf-call-* on when br_netfilter is loaded), or the
    # bridge silently drops malformed IP frames before they reach a director.
    for f in iptables ip6tables arptables; do
        [[ -e /proc/sys/net/bridge/bridge-nf-call-$f ]] || continue
        nsx sw sh -c "echo 0 > /proc/sys/net/bridge/bridge-nf-call-$f" 2>/dev/null || true
    done

    for h in "${HOSTS[@]}"; do
        local q=1
        [[ $h == d* ]] && q=$Q
        ip -n "$(ns sw)" link add "port-$h" address "$(port_mac "$h")" \
            numtxqueues "$q" numrxqueues "$q" type veth \
            peer name eth0 address "$(mac "$h")" netns "$(ns "$h")" \
            numtxqueues "$q" numrxqueues "$q"
        ip -n "$(ns sw)" link set "port-$h" master br0
        nsx sw ethtool -K "port-$h" gro off >/dev/null 2>&1 || true
        ip -n "$(ns sw)" link set "port-$h" up

        ip -n "$(ns "$h")" addr add "$(ip4 "$h")/24" dev eth0
        ip -n "$(ns "$h")" -6 addr add "$(ip6 "$h")/64" dev eth0 nodad
        ip -n "$(ns "$h")" link set eth0 up
        case $h in
        c | r*) nsx "$h" ethtool -K eth0 tx off >/dev/null ;;
        d*)
            nsysctl "$h" net/ipv4/ip_forward 0
            nsysctl "$h" net/ipv6/conf/all/forwarding 0
            ;;
        esac
    done

    for h in "${REALS[@]}"; do
        nsx "$h" "$SCRIPTS/realserver.sh" start "$VIP4" "$VIP6" >"$RUN/$h-realserver.log"
        ip netns exec "$(ns "$h")" "$PY" "$SCRIPTS/lab-httpd.py" "$h" \
            </dev/null >"$RUN/$h-httpd.log" 2>&1 &
        echo $! >"$RUN/$h-httpd.pid"
    done

    # Ready when the client gets each real server's name from its own address.
    for h in "${REALS[@]}"; do
        ok=0
        for ((i = 0; i < 100; i++)); do
            pid=$(<"$RUN/$h-httpd.pid")
            alive "$pid" || die "$h's lab-httpd.py exited: $(tail -n 5 "$RUN/$h-httpd.log")"
            if [[ $(nsx c curl -s -m 1 "http://$(ip4 "$h")/health" 2>/dev/null) == "$h" ]]; then
                ok=1
                break
            fi
            sleep 0.1
        done
        ((ok)) || die "$h's HTTP server did not answer within 10 s (log: $RUN/$h-httpd.log)"
    done
    UP_DONE=1
    trap - EXIT
}

cmd_up() {
    require_root
    local t0=$SECONDS
    do_up
    log "up in $((SECONDS - t0)) s: namespaces ${ALL_NS[*]/#/$P-}; logs and pids in $RUN/"
    log "VIPs $VIP4 and $VIP6 on lo of ${REALS[*]}; nothing answers ARP/NDP for them until a director does"
}

# ---------------------------------------------------------------- status

cmd_status() {
    require_root
    local h pid addrs state up=0
    echo "lab '$P' (run dir $RUN)"
    for h in "${ALL_NS[@]}"; do
        if ! ns_exists "$h"; then
            printf '  %-3s %-12s absent\n' "$h" "$(ns "$h")"
            continue
        fi
        up=$((up + 1))
        if [[ $h == sw ]]; then
            addrs="bridge br0: $(ip -n "$(ns sw)" -br link show master br0 2>/dev/null | awk '{printf "%s(%s) ", $1, $2}')"
        else
            state=$(ip -n "$(ns "$h")" -br link show eth0 2>/dev/null | awk '{print $2}')
            addrs="eth0 $state $(ip -n "$(ns "$h")" -br addr show eth0 2>/dev/null | awk '{$1=$2=""; print}' | xargs)"
            [[ $(ip -n "$(ns "$h")" link show eth0 2>/dev/null) == *prog/xdp* ]] && addrs+=" [xdp attached]"
        fi
        printf '  %-3s %-12s %-12s %s\n' "$h" "$(ns "$h")" "${ROLE[$h]:-switch}" "$addrs"
    done
    for h in "${REALS[@]}"; do
        ns_exists "$h" || continue
        pid=$(cat "$RUN/$h-httpd.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && alive "$pid"; then
            echo "  $h lab-httpd.py pid $pid (log $RUN/$h-httpd.log)"
        else
            echo "  $h lab-httpd.py NOT running"
        fi
        if nsx "$h" "$SCRIPTS/realserver.sh" status "$VIP4" "$VIP6" >/dev/null 2>&1; then
            echo "  $h realserver: VIPs on lo, ARP suppressed"
        else
            echo "  $h realserver: NOT configured"
        fi
    done
    pid=$(cat "$RUN/xlb.pid" 2>/dev/null || true)
    [[ -n $pid ]] && alive "$pid" && echo "  xlb running in d1, pid $pid (log $RUN/xlb.log)"
    if ((up == ${#ALL_NS[@]})); then
        echo "lab '$P' is up"
    elif ((up == 0)); then
        echo "lab '$P' is down"
        return 3
    else
        echo "lab '$P' is partial ($up of ${#ALL_NS[@]} namespaces)"
        return 3
    fi
}

# ---------------------------------------------------------------- exec

cmd_exec() {
    require_root
    (($# >= 2)) || {
        echo "usage: lab.sh exec HOST CMD [ARGS...]   (HOST: ${ALL_NS[*]})" >&2
        exit "$EX_USAGE"
    }
    local h=$1
    shift
    valid_host "$h" || {
        echo "lab.sh: unknown host '$h' (one of: ${ALL_NS[*]})" >&2
        exit "$EX_USAGE"
    }
    ns_exists "$h" || die "namespace $(ns "$h") does not exist (run: XLB_LAB=$P scripts/lab.sh up)"
    exec ip netns exec "$(ns "$h")" "$@"
}

# ---------------------------------------------------------------- traffic

# pkts HOST DEV rx|tx: packet counter of DEV in HOST's namespace.
pkts() {
    nsx "$1" cat "/sys/class/net/$2/statistics/$3_packets"
}

# Snapshot of the counters the bypass proof uses, as "name=value" words.
snapshot() {
    local h out=""
    for h in c d1 r1 r2 r3; do
        out+="$h.rx=$(pkts "$h" eth0 rx) $h.tx=$(pkts "$h" eth0 tx) "
    done
    out+="port-d1.rx=$(pkts sw port-d1 rx) port-d1.tx=$(pkts sw port-d1 tx)"
    echo "$out"
}

counter() { # counter SNAPSHOT NAME
    local kv
    for kv in $1; do
        [[ ${kv%%=*} == "$2" ]] && echo "${kv#*=}" && return
    done
    echo 0
}

# The traffic part of the demo; works against whatever answers for the VIPs.
do_traffic() {
    local n4=$1 n6=$2 h i who fails=0 before after d cap_pid replies
    local -A count=()
    for h in "${ALL_NS[@]}"; do ns_exists "$h" || die "lab is not up (run: XLB_LAB=$P scripts/lab.sh up)"; done
    command -v tcpdump >/dev/null || die "tcpdump not found (run scripts/setup.sh)"

    # Replies come from port 80 (TCP) or 5353 (UDP). A capture on the bridge port facing
    # the director (its own eth0 does not show AF_XDP traffic, DESIGN.md §5) must see none.
    rm -f "$RUN/port-d1.pcap"
    ip netns exec "$(ns sw)" tcpdump -i port-d1 -n -U -w "$RUN/port-d1.pcap" \
        'tcp src port 80 or udp src port 5353' </dev/null >"$RUN/tcpdump.log" 2>&1 &
    cap_pid=$!
    echo "$cap_pid" >"$RUN/tcpdump.pid"
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$RUN/tcpdump.log" 2>/dev/null && break
        sleep 0.1
    done

    before=$(snapshot)
    for ((i = 1; i <= n4; i++)); do
        who=$(nsx c curl -s -m 2 "http://$VIP4/" 2>/dev/null) || who=""
        if [[ -n $who ]]; then count[$who]=$((${count[$who]:-0} + 1)); else fails=$((fails + 1)) who="FAILED"; fi
        printf '  IPv4 request %2d -> %s\n' "$i" "$who"
    done
    for ((i = 1; i <= n6; i++)); do
        who=$(nsx c curl -s -g -m 2 "http://[$VIP6]/" 2>/dev/null) || who=""
        if [[ -n $who ]]; then count[$who]=$((${count[$who]:-0} + 1)); else fails=$((fails + 1)) who="FAILED"; fi
        printf '  IPv6 request %2d -> %s\n' "$i" "$who"
    done
    after=$(snapshot)
    sleep 0.2
    kill_pidfile "$RUN/tcpdump.pid"
    replies=$(tcpdump -n -r "$RUN/port-d1.pcap" 2>/dev/null | wc -l)

    echo "answers per real server:"
    for who in "${!count[@]}"; do printf '  %-4s %d\n' "$who" "${count[$who]}"; done | sort
    ((fails == 0)) || echo "  FAILED requests: $fails"

    echo "packet counters (delta over the run):"
    for d in c.tx c.rx d1.rx d1.tx port-d1.tx port-d1.rx r1.tx r2.tx r3.tx; do
        printf '  %-11s %+d\n' "$d" $(($(counter "$after" "$d") - $(counter "$before" "$d")))
    done
    local c_tx c_rx r_tx d_rx d_tx
    c_tx=$(($(counter "$after" c.tx) - $(counter "$before" c.tx)))
    c_rx=$(($(counter "$after" c.rx) - $(counter "$before" c.rx)))
    # What the bridge port sends is what d1 receives, and the other way round.
    d_rx=$(($(counter "$after" port-d1.tx) - $(counter "$before" port-d1.tx)))
    d_tx=$(($(counter "$after" port-d1.rx) - $(counter "$before" port-d1.rx)))
    r_tx=0
    for h in "${REALS[@]}"; do r_tx=$((r_tx + $(counter "$after" "$h.tx") - $(counter "$before" "$h.tx"))); done
    echo "  the client sent $c_tx packets; the director d1 received $d_rx and sent $d_tx (the requests it forwarded)"
    echo "  the client received $c_rx packets; the real servers sent $r_tx, straight to the client"
    echo "  reply packets (tcp/80, udp/5353 from a server) on d1's bridge port: $replies"
    if ((replies == 0)); then
        echo "replies bypassed the director: none crossed its bridge port"
    else
        echo "replies did NOT bypass the director: $replies reply packets crossed port-d1" >&2
    fi
    ((fails == 0 && replies == 0))
}

cmd_traffic() {
    require_root
    local n4=${1:-20} n6=${2:-10}
    [[ $n4 =~ ^[0-9]+$ && $n6 =~ ^[0-9]+$ ]] || {
        echo "usage: lab.sh traffic [N4 [N6]]" >&2
        exit "$EX_USAGE"
    }
    do_traffic "$n4" "$n6"
}

# ---------------------------------------------------------------- rs-stop / rs-start

valid_real() {
    local h
    if (($# == 1)); then
        for h in "${REALS[@]}"; do [[ $1 == "$h" ]] && return 0; done
    fi
    echo "usage: lab.sh rs-stop|rs-start rN   (one of: ${REALS[*]})" >&2
    exit "$EX_USAGE"
}

cmd_rs_stop() {
    require_root
    valid_real "$@"
    kill_pidfile "$RUN/$1-httpd.pid"
    log "$1: lab-httpd.py stopped"
}

cmd_rs_start() {
    require_root
    valid_real "$@"
    local h=$1 pid i
    ns_exists "$h" || die "lab is not up (run: XLB_LAB=$P scripts/lab.sh up)"
    if [[ -f $RUN/$h-httpd.pid ]] && pid=$(pidfile_pid "$RUN/$h-httpd.pid"); then
        log "$h: lab-httpd.py already runs (pid $pid)"
        return 0
    fi
    ip netns exec "$(ns "$h")" "$PY" "$SCRIPTS/lab-httpd.py" "$h" \
        </dev/null >>"$RUN/$h-httpd.log" 2>&1 &
    echo $! >"$RUN/$h-httpd.pid"
    for ((i = 0; i < 100; i++)); do
        alive "$!" || die "$h's lab-httpd.py exited: $(tail -n 5 "$RUN/$h-httpd.log")"
        if [[ $(nsx c curl -s -m 1 "http://$(ip4 "$h")/health" 2>/dev/null) == "$h" ]]; then
            log "$h: lab-httpd.py started"
            return 0
        fi
        sleep 0.05
    done
    die "$h's HTTP server did not answer within 5 s"
}

# ---------------------------------------------------------------- demo

write_config() {
    local cfg=$1 h last_cpu
    last_cpu=$(($(nproc) - 1))
    {
        echo "# Generated by scripts/lab.sh demo for lab '$P'. Director d1, real servers r1..r3."
        echo "interface: eth0"
        echo "xdp_mode: native"
        echo "workers: { queues: all, cores: [$last_cpu], batch_size: 64, frames: 4096 }"
        echo "flows: { capacity: 65536, tcp_timeout: 900s, tcp_fin_timeout: 30s, udp_timeout: 30s }"
        echo "metrics: { listen: \"127.0.0.1:9650\" }"
        echo "control_socket: $RUN/xlb.sock"
        echo "virtual_servers:"
        for fam in 4 6; do
            echo "  - name: web$fam"
            if [[ $fam == 4 ]]; then echo "    vip: $VIP4"; else echo "    vip: \"$VIP6\""; fi
            echo "    ports: [80]"
            echo "    protocol: tcp"
            echo "    scheduler: maglev"
            echo "    table_size: 65537"
            echo "    real_servers:"
            for h in "${REALS[@]}"; do
                if [[ $fam == 4 ]]; then echo "      - address: $(ip4 "$h")"; else echo "      - address: \"$(ip6 "$h")\""; fi
                echo "        mac: \"$(mac "$h")\""
                if [[ $h == r3 ]]; then echo "        weight: 2"; else echo "        weight: 1"; fi
                echo "        check: { type: http, port: 80, path: /health, status: [200], interval: 1s, timeout: 500ms, rise: 1, fall: 2 }"
            done
        done
    } >"$cfg"
}

DEMO_KEEP=0
DEMO_UP=0
demo_cleanup() {
    [[ -f $RUN/xlb.pid ]] && kill_pidfile "$RUN/xlb.pid"
    if ((DEMO_UP && !DEMO_KEEP)); then
        do_down
        log "down"
    fi
}

cmd_demo() {
    require_root
    local arg bin=${XLB_BIN:-$ROOT/target/release/xlb} cfg pid i ready=0 rc=0
    for arg in "$@"; do
        case $arg in
        --keep) DEMO_KEEP=1 ;;
        *)
            echo "usage: lab.sh demo [--keep]" >&2
            exit "$EX_USAGE"
            ;;
        esac
    done
    if [[ -z ${XLB_BIN:-} && ! -x $bin ]]; then
        log "building xlb (cargo build --release)"
        command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) and run scripts/setup.sh"
        (cd "$ROOT" && cargo build --release)
    fi
    [[ -x $bin ]] || die "$bin is not an executable"
    do_up
    DEMO_UP=1
    trap demo_cleanup EXIT
    log "lab up; VIPs $VIP4 and $VIP6, real servers r1 r2 r3 with weights 1 1 2"

    cfg=$RUN/xlb.yaml
    write_config "$cfg"
    log "starting the director in d1: $bin run --config $cfg (log $RUN/xlb.log)"
    ip netns exec "$(ns d1)" "$bin" run --config "$cfg" </dev/null >"$RUN/xlb.log" 2>&1 &
    pid=$!
    echo "$pid" >"$RUN/xlb.pid"

    for ((i = 0; i < 100; i++)); do
        if ! alive "$pid"; then
            wait "$pid" || rc=$?
            echo "the director exited (status $rc) before it served the VIP; its log:" >&2
            tail -n 20 "$RUN/xlb.log" >&2
            exit 1
        fi
        if nsx c curl -s -m 0.5 -o /dev/null "http://$VIP4/"; then
            ready=1
            break
        fi
        sleep 0.1
    done
    ((ready)) || {
        echo "the VIP did not answer within 10 s; the director's log:" >&2
        tail -n 20 "$RUN/xlb.log" >&2
        exit 1
    }
    log "the director is serving $VIP4:80; sending requests from the client"

    do_traffic 20 10 || rc=1

    log "stopping the director (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    local xrc=0
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "the director did not exit within 5 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        rc=1
    fi
    wait "$pid" || xrc=$?
    rm -f "$RUN/xlb.pid"
    log "the director exited with status $xrc"
    ((xrc == 0)) || rc=1
    if [[ $(ip -n "$(ns d1)" link show eth0) == *prog/xdp* ]]; then
        echo "an XDP program is still attached to d1's eth0" >&2
        rc=1
    fi
    if ((DEMO_KEEP)); then
        log "--keep: lab left up (XLB_LAB=$P scripts/lab.sh down to remove it)"
    fi
    return "$rc"
}

# ---------------------------------------------------------------- main

main() {
    (($# >= 1)) || usage
    local cmd=$1
    shift
    case $cmd in
    up | down | status)
        (($# == 0)) || usage
        "cmd_$cmd"
        ;;
    exec) cmd_exec "$@" ;;
    traffic) cmd_traffic "$@" ;;
    demo) cmd_demo "$@" ;;
    rs-stop) cmd_rs_stop "$@" ;;
    rs-start) cmd_rs_start "$@" ;;
    -h | --help | help) usage ;;
    *)
        echo "lab.sh: unknown command '$cmd'" >&2
        usage
        ;;
    esac
}

main "$@"
