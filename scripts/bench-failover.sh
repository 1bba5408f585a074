#!/usr/bin/env bash
# bench-failover.sh: VRRP failover time of an xlb director pair and of a keepalived pair,
# measured the same way, in the netns lab (scripts/lab.sh). Root.
#
#   scripts/bench-failover.sh [RUNS] [--markdown FILE]
#
# For each scenario and each run: d1 (priority 150) and d2 (priority 100) start, d1 becomes
# master; the client probes the VIP every 10 ms with an ICMP echo (answered by the master's
# kernel, which holds the VIP: this works for both pairs) and, for xlb, a UDP datagram to
# VIP:5353 (forwarded by the master's data plane to a real server, whose echo comes
# straight back: the service as a client sees it). Mid-run the master fails; the failover
# time is the longest silence of a probe stream: last reply before the failure to first
# reply after it. Medians over RUNS (default 5) per scenario are printed, with the ratio
# keepalived / xlb, and written as a markdown table to FILE when asked.
#
# Scenarios: advert interval 1 s (keepalived's default) and 100 ms (VRRPv3), failures
# "link down" (ip link set eth0 down in the master: a dead box) and "SIGTERM" (clean
# shutdown, priority 0). SIGKILL is measured for xlb only: a SIGKILLed keepalived leaves
# the VIP on its interface and its kernel keeps answering pings (DESIGN.md §5), so the
# VIP never moves.
#
# Env: XLB_BIN (default target/release/xlb, built if missing), XLB_LAB (default fobench),
#      ONLY (a regex: run only the scenarios "impl version interval_ms failure" it
#      matches, e.g. ONLY=sigkill).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
export XLB_LAB=${XLB_LAB:-fobench}
readonly LAB=$ROOT/scripts/lab.sh
readonly RUN=/tmp/$XLB_LAB
readonly VIP=10.99.0.100
readonly MAC_D1=02:99:00:00:00:02

RUNS=5
MD=""
while (($#)); do
    case $1 in
    --markdown)
        MD=${2:?--markdown needs a file}
        shift 2
        ;;
    [0-9]*)
        RUNS=$1
        shift
        ;;
    *)
        sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 64
        ;;
    esac
done
((EUID == 0)) || {
    echo "bench-failover: must run as root (network namespaces)" >&2
    exit 1
}
for c in keepalived python3 curl; do
    command -v "$c" >/dev/null || {
        echo "bench-failover: '$c' not found (run scripts/setup.sh; apt-get install keepalived)" >&2
        exit 1
    }
done
BIN=${XLB_BIN:-$ROOT/target/release/xlb}
if [[ -z ${XLB_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --bin xlb >/dev/null 2>&1) || {
        echo "bench-failover: cargo build --release failed" >&2
        exit 1
    }
fi
[[ -x $BIN ]] || {
    echo "bench-failover: $BIN is not executable" >&2
    exit 1
}

nsx() {
    local h=$1
    shift
    ip netns exec "$XLB_LAB-$h" "$@"
}

PIDS=()
declare -A PID=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$LAB" up >/dev/null
mkdir -p "$RUN"

# ------------------------------------------------------------------ configs

xlb_config() { # HOST PRIORITY VERSION INTERVAL_MS
    local r
    {
        echo "interface: eth0"
        echo "xdp_mode: native"
        echo "workers: { queues: all, cores: [1], batch_size: 64, frames: 4096 }"
        echo "metrics: { listen: \"127.0.0.1:9650\" }"
        echo "control_socket: $RUN/xlb-$1.sock"
        echo "vrrp:"
        echo "  - { name: VI_1, interface: eth0, vrid: 51, priority: $2, version: $3, advert_interval: ${4}ms }"
        echo "virtual_servers:"
        for svc in "web4 80 tcp" "probe4 5353 udp"; do
            read -r name port proto <<<"$svc"
            echo "  - { name: $name, vip: $VIP, ports: [$port], protocol: $proto, vrrp: VI_1, real_servers: ["
            for r in 11 12 13; do echo "      { address: 10.99.0.$r, mac: \"02:99:00:00:00:$r\" },"; done
            echo "    ] }"
        done
    } >"$RUN/xlb-$1.yaml"
}

keepalived_config() { # HOST PRIORITY VERSION INTERVAL_S
    cat >"$RUN/ka-$1.conf" <<EOF
global_defs {
  router_id bench_$1
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $2
  advert_int $4
  version $3
  virtual_ipaddress {
    $VIP/32
  }
}
EOF
}

# ------------------------------------------------------------------ the prober

cat >"$RUN/prober.py" <<'EOF'
"""Probe VIP every 10 ms by ICMP echo and UDP to :5353 for DURATION s; print the longest
silence (ms) of each reply stream, -1 when it got fewer than two replies."""
import os, socket, struct, sys, threading, time

vip, duration = sys.argv[1], float(sys.argv[2])
ident = os.getpid() & 0xFFFF
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for s in (icmp, udp):
    s.settimeout(0.05)
got = {"icmp": [], "udp": []}
stop = threading.Event()

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

def rx(sock, kind):
    while not stop.is_set():
        try:
            data = sock.recv(2048)
        except (socket.timeout, OSError):
            continue
        if kind == "icmp":
            ihl = (data[0] & 15) * 4
            if len(data) < ihl + 8 or data[ihl] != 0:
                continue
            if struct.unpack("!H", data[ihl + 4:ihl + 6])[0] != ident:
                continue
        got[kind].append(time.monotonic())

threads = [threading.Thread(target=rx, args=(icmp, "icmp")), threading.Thread(target=rx, args=(udp, "udp"))]
for t in threads:
    t.start()
end, seq = time.monotonic() + duration, 0
while time.monotonic() < end:
    seq = (seq + 1) & 0xFFFF
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"xlb-bench"
    pkt = struct.pack("!BBHHH", 8, 0, csum(hdr), ident, seq) + b"xlb-bench"
    for sock, payload, addr in ((icmp, pkt, (vip, 0)), (udp, b"probe", (vip, 5353))):
        try:
            sock.sendto(payload, addr)
        except OSError:
            pass
    time.sleep(0.01)
time.sleep(0.3)
stop.set()
for t in threads:
    t.join()

def gap(ts):
    return round(max(b - a for a, b in zip(ts, ts[1:])) * 1000) if len(ts) > 1 else -1

print(gap(got["icmp"]), gap(got["udp"]))
EOF

# ------------------------------------------------------------------ one run

start_pair() { # IMPL VERSION INTERVAL_MS
    local h prio impl=$1
    for h in d1 d2; do
        if [[ $h == d1 ]]; then prio=150; else prio=100; fi
        if [[ $impl == xlb ]]; then
            xlb_config "$h" "$prio" "$2" "$3"
            # `ip netns exec` directly (not the nsx function): $! is then xlb itself.
            ip netns exec "$XLB_LAB-$h" "$BIN" run --config "$RUN/xlb-$h.yaml" </dev/null >>"$RUN/xlb-$h.log" 2>&1 &
        else
            keepalived_config "$h" "$prio" "$2" "$(awk "BEGIN{print $3/1000}")"
            ip netns exec "$XLB_LAB-$h" keepalived -n -l -D -P -f "$RUN/ka-$h.conf" -p "$RUN/ka-$h.pid" \
                -r "$RUN/ka-$h-vrrp.pid" </dev/null >>"$RUN/ka-$h.log" 2>&1 &
        fi
        PIDS+=($!)
        PID[$h]=$!
        if [[ $h == d1 ]]; then sleep 0.3; fi # d1 first: it is the master to fail
    done
}

stop_all() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    for h in d1 d2; do
        nsx "$h" ip link set eth0 up
        nsx "$h" ip addr del "$VIP/32" dev eth0 2>/dev/null || true
        nsx "$h" ip link set eth0 xdp off 2>/dev/null || true
    done
    nsx c ip neigh flush dev eth0 >/dev/null 2>&1 || true
}

# Waits until d1 is master and answers pings for the VIP.
wait_d1_master() {
    local i
    for ((i = 0; i < 200; i++)); do
        if nsx d1 ip -o addr show dev eth0 | grep -q "inet $VIP/" &&
            nsx c ping -c 1 -W 1 "$VIP" >/dev/null 2>&1 &&
            [[ $(nsx c ip neigh show "$VIP" dev eth0) == *"$MAC_D1"* ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench-failover: d1 did not become master" >&2
    return 1
}

# one_run IMPL VERSION INTERVAL_MS FAILURE -> prints "ICMP_GAP UDP_GAP"
one_run() {
    local impl=$1 version=$2 ms=$3 failure=$4 dur out ppid
    start_pair "$impl" "$version" "$ms"
    wait_d1_master
    sleep 0.5
    dur=$(awk "BEGIN{print 1.5 + 5 * $ms / 1000 + 1.5}")
    ip netns exec "$XLB_LAB-c" python3 "$RUN/prober.py" "$VIP" "$dur" >"$RUN/probe.out" &
    ppid=$!
    sleep 1
    case $failure in
    linkdown) nsx d1 ip link set eth0 down ;;
    sigterm) kill -TERM "${PID[d1]}" ;;
    sigkill) kill -KILL "${PID[d1]}" ;;
    esac
    wait "$ppid"
    out=$(<"$RUN/probe.out")
    stop_all
    echo "$out"
}

median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

declare -A RES=()
# scenario: impl version interval_ms failure
SCENARIOS=(
    "xlb 3 1000 linkdown" "keepalived 3 1000 linkdown"
    "xlb 3 1000 sigterm" "keepalived 3 1000 sigterm"
    "xlb 3 100 linkdown" "keepalived 3 100 linkdown"
    "xlb 3 100 sigterm" "keepalived 3 100 sigterm"
    "xlb 3 100 sigkill" "xlb 3 1000 sigkill"
)
for sc in "${SCENARIOS[@]}"; do
    [[ -n ${ONLY:-} && ! $sc =~ $ONLY ]] && continue
    read -r impl version ms failure <<<"$sc"
    icmp=() udp=()
    for ((r = 1; r <= RUNS; r++)); do
        read -r gi gu < <(one_run "$impl" "$version" "$ms" "$failure")
        echo "  $impl v$version ${ms}ms $failure run $r: icmp ${gi} ms, udp ${gu} ms" >&2
        [[ $gi != -1 ]] && icmp+=("$gi")
        [[ $gu != -1 ]] && udp+=("$gu")
    done
    RES[$sc:icmp]=$(printf '%s\n' "${icmp[@]}" | { grep . || true; } | median)
    RES[$sc:udp]=$(printf '%s\n' "${udp[@]}" | { grep . || true; } | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.1fx", a/b; else print "n/a" }'; }
ms() { if [[ $1 =~ ^[0-9]+$ ]]; then echo "$1 ms"; else echo "$1"; fi; }

{
    echo "| advert | failure | keepalived (VIP ping) | xlb (VIP ping) | xlb (service: UDP through the data plane) | keepalived / xlb |"
    echo "|---|---|---|---|---|---|"
    for ms in 1000 100; do
        for failure in linkdown sigterm sigkill; do
            k=${RES["keepalived 3 $ms $failure:icmp"]:-n/a}
            x=${RES["xlb 3 $ms $failure:icmp"]:-n/a}
            xu=${RES["xlb 3 $ms $failure:udp"]:-n/a}
            if [[ $failure == sigkill ]]; then
                # keepalived's dead box keeps the VIP and its kernel answers pings: no
                # measure. xlb's dead box answers pings until its liveness stamp goes
                # stale (1 s), then drops them: the ping gap is the takeover time less
                # that second, not a failover time.
                k="n/a (VIP stays on the dead box)"
                x="n/a (dead box answers pings for 1 s)"
            fi
            if [[ $ms == 1000 ]]; then adv="1 s"; else adv="100 ms"; fi
            echo "| $adv | $failure | $(ms "$k") | $(ms "$x") | $(ms "$xu") | $(ratio "$k" "$xu") |"
        done
    done
    echo
    echo "Medians of $RUNS runs, VRRPv3, priorities 150/100, probes every 10 ms (resolution 10 ms)."
} | tee "${MD:-/dev/null}"
