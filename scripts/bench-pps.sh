#!/usr/bin/env bash
# bench-pps.sh: packets per second through the director, in the netns lab (issue 3 item 9).
#
#   sudo scripts/bench-pps.sh [RUNS]        (default 3 runs; prints a table and medians)
#
# A generator on one core sends 64-byte UDP frames (60 bytes + FCS) from 10.99.0.10
# (256 source ports) to VIP 10.99.0.100:9000, addressed to the director d1's MAC, faster
# than the director can forward them (the excess is dropped at d1's veth ring). In one
# run, alternating, it measures
#   xlb     target/release/xlb in d1, one AF_XDP worker (a UDP service, 3 real servers);
#   xdp     an in-kernel XDP program on d1's eth0 doing the same MAC rewrite (hash pick of
#           one of 3 real servers) and XDP_TX: the ceiling of this platform
#           (scripts/bench/dr_tx.bpf.c);
#   kernel  the kernel's own forwarding path, which IPVS-DR rides on: ip_forward=1 in d1,
#           the VIP routed by an ECMP route (L4 hash) to the 3 real servers through static
#           neighbours, ICMP redirects off.
# A counting XDP sink (scripts/bench/sink.bpf.c) drops the frames that were forwarded
# correctly (source MAC d1's, destination MAC a real server's); veth counts them
# (ethtool -S: rx_queue_0_xdp_drops). Mpps = frames counted / the generator's running time;
# "offered" = frames the generator got onto d1's link in that time (the device's
# tx_packets; in direct mode only those that fit into d1's rx ring count); "drop%" = the
# share of those that d1's eth0 dropped after its XDP program (for xlb: redirects into the
# AF_XDP socket that failed, its RX ring full or fill ring empty).
# Medians over RUNS and the ratios xlb/xdp and xlb/kernel are printed at the end.
#
# MODE=direct (default): an XDP program run by BPF_PROG_RUN in live-frames mode
#   (scripts/bench/xdpgen.c + xdpgen.bpf.c, built here with clang against the system's
#   libbpf.so.1) XDP_TXes frames out of the switch port facing d1 (port-d1, whose peer is
#   d1's eth0), and the sink sits on that same port: no bridge hop and no skb on the
#   generator's side (it makes about 1.4 Mpps on one core of this machine).
# MODE=lab: trafgen (netsniff-ng) in the client namespace, sinks on the real servers'
#   eth0: every frame crosses the bridge twice, and trafgen offers about 0.3 Mpps at
#   best, below what the XDP variants forward (a generator-bound comparison).
# The generator runs at nice 19 (GEN_NICE) and the wire's NAPI poller on its core (the
# sink, or the bridge) at SCHED_FIFO 10, so that neither the generator nor anything else
# running on that core starves the wire.
#
# CPU placement (2 cores): the director's work gets a core of its own (DIR_CPU): xlb (all
# its threads) and the threaded NAPI poller of d1's eth0, whatever the variant (for the
# kernel path, GRO on gives the veth a NAPI poller). Everything else runs on GEN_CPU: the
# generator, port-d1's threaded NAPI poller (the sink or the bridge) and the sinks. The
# director's CPU time per forwarded packet is reported two ways: task_ns, the director's
# tasks (schedstat of xlb's threads + d1's NAPI thread, ns precision; for the XDP and
# kernel variants the NAPI thread does all the work; the kernel variant also needs TSO
# off on port-d1, or veth bypasses the NAPI poller), and core_ns, DIR_CPU's busy time in
# /proc/stat (10 ms ticks; includes anything else that ran on that core: the machine may
# be shared, so task_ns is the cleaner number).
#
# Env: XLB_LAB (lab prefix, default "xbpps"), XLB_BIN (default target/release/xlb),
#      MODE (direct), SECS (generator seconds per measurement, default 5), GEN_CPU (0),
#      DIR_CPU (1), GEN_NICE (19), FRAMES (xlb's workers.frames, default 4096),
#      FLOWS (xlb's flows.capacity, default 65536), RSS_EVERY (set to N: sample xlb's
#      VmRSS every N seconds while the generator runs and print the samples; with
#      SECS=600 VARIANTS=xlb FLOWS=1048576 this is the 10-minute memory run),
#      GEN_FLOW_BITS (direct mode: the generator picks among 2^N flows, default 8,
#      up to 24 to churn a 1M flow table), QUEUES (rx/tx queues of d1's link, default 1; 2: the scaling run below),
#      VARIANTS ("xlb xdp kernel"; "xlb:N" is xlb with workers.frames N, so that
#      e.g. VARIANTS="xlb:512 xlb:4096" compares UMEM sizes side by side; "xlb@W" runs
#      xlb on W queues with W workers, see QUEUES; "xlb+TAG" runs the binary in env
#      XLB_BIN_TAG, for A/B runs of two builds; "xlb/generic" attaches in generic
#      (skb) XDP mode instead of native), KEEP_LAB (set: leave the
#      lab up at the end for inspection; XLB_LAB=xbpps scripts/lab.sh down removes it).
#
# Scaling (issue 7): QUEUES=2 VARIANTS="xlb@1 xlb@2" (direct mode). d1's veth gets 2
# queues; a generator runs on each CPU (veth puts a frame XDP_TXed on CPU c into rx queue
# c mod the receiver's queue count); xlb@1 sets d1's eth0 to 1 queue (all frames into
# queue 0: one worker on DIR_CPU), xlb@2 to 2 queues (worker i and queue i's NAPI poller
# on CPU i). The table's gen% is the generators' share of both cores' time.
# Needs root, clang (BPF target), trafgen (netsniff-ng), ethtool, taskset. Traffic stays
# inside the lab's namespaces; the lab is torn down at the end, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT SCRIPTS=$ROOT/scripts
readonly BENCH=bench-pps
# shellcheck source=bench/common.sh
. "$SCRIPTS/bench/common.sh"
readonly P=${XLB_LAB:-xbpps}
readonly RUNS=${1:-3}
readonly SECS=${SECS:-5}
readonly GEN_CPU=${GEN_CPU:-0} DIR_CPU=${DIR_CPU:-1}
readonly MODE=${MODE:-direct} GEN_NICE=${GEN_NICE:-19} FRAMES=${FRAMES:-4096}
readonly GEN_FLOW_BITS=${GEN_FLOW_BITS:-8}
readonly FLOWS=${FLOWS:-65536} RSS_EVERY=${RSS_EVERY:-} QUEUES=${QUEUES:-1}
readonly XLB_BIN=${XLB_BIN:-$ROOT/target/release/xlb}
read -r -a VARIANTS <<<"${VARIANTS:-xlb xdp kernel}"
readonly VARIANTS
readonly WORK=/tmp/$P-bench
readonly VIP=10.99.0.100 PORT=9000
readonly D1_MAC=02:99:00:00:00:02 C_MAC=02:99:00:00:00:10
readonly REALS=(r1 r2 r3)
declare -rA RS_IP=([r1]=10.99.0.11 [r2]=10.99.0.12 [r3]=10.99.0.13)
declare -rA RS_MAC=([r1]=02:99:00:00:00:11 [r2]=02:99:00:00:00:12 [r3]=02:99:00:00:00:13)


[[ $RUNS =~ ^[1-9][0-9]?$ && $SECS =~ ^[1-9][0-9]{0,3}$ && $MODE =~ ^(direct|lab)$ &&
    $GEN_FLOW_BITS =~ ^([89]|1[0-9]|2[0-4])$ ]] || {
    sed -n '2,4s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 64
}
((EUID == 0)) || die "must run as root (network namespaces, XDP)"
for c in clang trafgen ethtool taskset chrt ip; do
    command -v "$c" >/dev/null || die "'$c' not found (run scripts/setup.sh)"
done
[[ " ${VARIANTS[*]} " != *" xlb"* || -x $XLB_BIN ]] ||
    die "$XLB_BIN not found: cargo build --release first"
NCPU=$(nproc)
((GEN_CPU < NCPU && DIR_CPU < NCPU)) || die "GEN_CPU/DIR_CPU must be below $NCPU"
[[ $QUEUES =~ ^[1-9]$ ]] && ((QUEUES <= NCPU)) || die "QUEUES must be 1..$NCPU"
((QUEUES == 1)) || [[ $MODE == direct ]] || die "QUEUES > 1 needs MODE=direct"
# CPUs of the generators (one per queue) and of worker/NAPI poller i (DIR_CPU first).
GEN_CPUS=("$GEN_CPU")
WORKER_CPUS=("$DIR_CPU")
if ((QUEUES > 1)); then
    GEN_CPUS=($(seq 0 $((QUEUES - 1))))
    WORKER_CPUS=("$DIR_CPU" $(seq 0 $((QUEUES - 1)) | grep -vx "$DIR_CPU"))
fi
readonly GEN_CPUS WORKER_CPUS

# ------------------------------------------------------------------ cleanup

XLB_PID=""
cleanup() {
    set +e
    stop_xlb
    [[ -n ${KEEP_LAB:-} ]] && return 0
    XLB_LAB=$P "$SCRIPTS/lab.sh" down >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_xlb() {
    stop_pid "$XLB_PID"
    XLB_PID=""
}

# ------------------------------------------------------------------ helpers

# Nanoseconds on CPU of the given tasks (threads of processes included).
task_ns() {
    local pid t sum=0 run
    for pid in "$@"; do
        for t in /proc/"$pid"/task/*/schedstat; do
            read -r run _ <"$t" 2>/dev/null || continue
            sum=$((sum + run))
        done
    done
    echo "$sum"
}

# Busy ticks of one CPU in /proc/stat (user nice system irq softirq steal).
cpu_busy() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Frames dropped by the XDP program of HOST's DEV, all rx queues.
xdp_drops() {
    nsx "$1" ethtool -S "$2" | awk '$1 ~ /^rx_queue_[0-9]+_xdp_drops:$/ { s += $2 } END { print s + 0 }'
}

sink_count() {
    local h sum=0
    if [[ $MODE == direct ]]; then
        xdp_drops sw port-d1
        return
    fi
    for h in "${REALS[@]}"; do sum=$((sum + $(xdp_drops "$h" eth0))); done
    echo "$sum"
}

# Where the generator runs: "namespace device".
gen_where() { if [[ $MODE == direct ]]; then echo "sw port-d1"; else echo "c eth0"; fi; }

gen_sent() {
    local h d
    read -r h d <<<"$(gen_where)"
    nsx "$h" cat "/sys/class/net/$d/statistics/tx_packets"
}

# generate SECONDS: the generator on GEN_CPU, at nice GEN_NICE, for SECONDS (may be fractional).
generate() {
    local t=$1 h d
    read -r h d <<<"$(gen_where)"
    if [[ $MODE == direct ]]; then
        local cpu pids=() pid
        for cpu in "${GEN_CPUS[@]}"; do
            timeout -s KILL "$(awk -v t="$t" 'BEGIN { print t + 10 }')" \
                ip netns exec "$P-$h" nice -n "$GEN_NICE" taskset -c "$cpu" \
                "$WORK/xdpgen" "$WORK/xdpgen.bpf.o" "$d" "$t" >>"$WORK/gen.log" 2>&1 &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do
            wait "$pid" || die "xdpgen failed: $(tail -n 3 "$WORK/gen.log")"
        done
        return
    fi
    timeout -s INT "$t" ip netns exec "$P-$h" nice -n "$GEN_NICE" taskset -c "$GEN_CPU" \
        trafgen --dev "$d" --conf "$WORK/udp64.trafgen" -P 1 -n 200000000 -Q --no-sock-mem \
        >>"$WORK/gen.log" 2>&1 || true
}

# ------------------------------------------------------------------ setup

build_bpf() {
    local p
    if [[ $MODE == direct ]]; then
        clang -O2 -o "$WORK/xdpgen" "$SCRIPTS/bench/xdpgen.c" -l:libbpf.so.1 ||
            die "cannot build scripts/bench/xdpgen.c (needs clang and libbpf.so.1); try MODE=lab"
    fi
    for p in sink dr_tx pass xdpgen; do
        clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
            -DVIP=0x0a630064 -DPORT=$PORT -DFLOW_BITS="$GEN_FLOW_BITS" -c "$SCRIPTS/bench/$p.bpf.c" -o "$WORK/$p.bpf.o" ||
            die "clang failed on scripts/bench/$p.bpf.c"
    done
}

mac_bytes() { echo "0x${1//:/, 0x}"; }

write_trafgen() {
    # Ethernet to d1, IPv4 10.99.0.10 -> VIP (TTL 64, header checksum), UDP from ports
    # 1024..1279 (one flow per port) to $PORT, no UDP checksum, 18 bytes of padding.
    cat >"$WORK/udp64.trafgen" <<EOF
cpu($GEN_CPU): {
  $(mac_bytes "$D1_MAC"), $(mac_bytes "$C_MAC"), 0x08, 0x00,
  0x45, 0x00, c16(46), c16(0), 0x40, 0x00, 0x40, 17, csumip(14, 33),
  10, 99, 0, 10, 10, 99, 0, 100,
  0x04, dinc(0, 255), c16($PORT), c16(26), c16(0),
  fill(0x00, 18)
}
EOF
}

# write_xlb_config FRAMES "CPU..." [XDP_MODE]: $WORK/xlb.yaml, one worker per CPU (queue i on the
# i-th CPU; xlb pins its other threads to the workers' cores, as taskset would).
write_xlb_config() {
    local frames=$1 cores=${2// /, } mode=${3:-native} h
    {
        echo "# Generated by scripts/bench-pps.sh for lab '$P'."
        echo "interface: eth0"
        echo "xdp_mode: $mode"
        echo "workers: { queues: all, batch_size: 64, frames: $frames, cores: [$cores] }"
        echo "flows: { capacity: $FLOWS, tcp_timeout: 900s, tcp_fin_timeout: 30s, udp_timeout: 30s }"
        echo "metrics: { listen: \"127.0.0.1:9650\" }"
        echo "control_socket: $WORK/xlb.sock"
        echo "virtual_servers:"
        echo "  - name: bench"
        echo "    vip: $VIP"
        echo "    ports: [$PORT]"
        echo "    protocol: udp"
        echo "    scheduler: maglev"
        echo "    table_size: 65537"
        echo "    real_servers:"
        for h in "${REALS[@]}"; do
            echo "      - { address: ${RS_IP[$h]}, mac: \"${RS_MAC[$h]}\", weight: 1 }"
        done
    } >"$WORK/xlb.yaml"
}

setup_lab() {
    local h before pid
    XLB_LAB=$P XLB_LAB_QUEUES=$QUEUES "$SCRIPTS/lab.sh" up >"$WORK/lab.log" 2>&1 || {
        cat "$WORK/lab.log" >&2
        die "lab.sh up failed"
    }
    # port-d1 gets an XDP program (native XDP_TX into d1's veth needs one on this end):
    # the sink (direct mode) or XDP_PASS to the bridge (lab mode, sinks on the real
    # servers), with a threaded NAPI poller on the generator's core.
    before=$(napi_threads)
    if [[ $MODE == direct ]]; then
        nsx sw ip link set dev port-d1 xdpdrv obj "$WORK/sink.bpf.o" sec xdp
    else
        nsx sw ip link set dev port-d1 xdpdrv obj "$WORK/pass.bpf.o" sec xdp
        for h in "${REALS[@]}"; do
            nsx "$h" ip link set dev eth0 xdpdrv obj "$WORK/sink.bpf.o" sec xdp
        done
    fi
    set_threaded sw port-d1
    # The wire must never be the bottleneck: its pollers run SCHED_FIFO (they sleep when
    # there is nothing to do; the kernel's RT throttling caps them at 95% of a core).
    for pid in $(wait_napi "$before" port-d1 "${GEN_CPUS[@]}"); do
        chrt -f -p 10 "$pid"
    done
    # veth hands a frame to the peer's NAPI (where GRO and the threaded poller live) only
    # when the sending end has no TSO (veth_skb_is_eligible_for_gro): needed for the
    # kernel variant, harmless for UDP in the others.
    nsx sw ethtool -K port-d1 tso off >/dev/null
    # For the kernel path: static neighbours and redirects off (they stay for all variants).
    for h in "${REALS[@]}"; do
        nsx d1 ip neigh replace "${RS_IP[$h]}" lladdr "${RS_MAC[$h]}" dev eth0 nud permanent
    done
    nsysctl d1 net/ipv4/conf/all/send_redirects 0
    nsysctl d1 net/ipv4/conf/eth0/send_redirects 0
    nsysctl d1 net/ipv4/fib_multipath_hash_policy 1
}

# ------------------------------------------------------------------ variants

DIR_TASKS=()

start_variant() {
    local v=$1 before i frames=$FRAMES workers=$QUEUES
    # Variants other than xlb@W see all of d1's queues.
    if [[ $v =~ @([0-9]+) ]]; then
        workers=${BASH_REMATCH[1]}
        ((workers >= 1 && workers <= QUEUES)) || die "variant $v: needs 1..QUEUES ($QUEUES) workers"
    fi
    if ((QUEUES > 1)); then
        # Native XDP on a veth needs as many rx queues as its peer has tx queues: both
        # ends of d1's link change (port-d1 keeps its rx queues and their pollers).
        nsx sw ethtool -L port-d1 tx "$workers"
        nsx d1 ethtool -L eth0 rx "$workers" tx "$workers"
    fi
    before=$(napi_threads)
    case $v in
    xlb*)
        [[ $v =~ ^xlb(:([0-9]+))?(@[0-9]+)?(\+([A-Za-z0-9_]+))?(/(native|generic))?$ ]] ||
            die "bad variant '$v' (xlb[:FRAMES][@WORKERS][+TAG][/native|/generic])"
        [[ -n ${BASH_REMATCH[2]} ]] && frames=${BASH_REMATCH[2]}
        local mode=${BASH_REMATCH[7]:-native}
        # Generic XDP leaves the veth without NAPI, which the peer's XDP_TX (the
        # generator) needs: GRO gives it one (frames then become skbs before XDP runs).
        [[ $mode == generic ]] && nsx d1 ethtool -K eth0 gro on >/dev/null
        local bin=$XLB_BIN
        if [[ -n ${BASH_REMATCH[5]} ]]; then
            local bin_var=XLB_BIN_${BASH_REMATCH[5]}
            bin=${!bin_var:-}
            [[ -x $bin ]] || die "variant $v: set $bin_var to an xlb binary"
        fi
        write_xlb_config "$frames" "${WORKER_CPUS[*]:0:workers}" "$mode"
        local cpus="${WORKER_CPUS[*]:0:workers}"
        ip netns exec "$P-d1" taskset -c "${cpus// /,}" "$bin" run --config "$WORK/xlb.yaml" \
            </dev/null >>"$WORK/xlb.log" 2>&1 &
        XLB_PID=$!
        ;;
    xdp) nsx d1 ip link set dev eth0 xdpdrv obj "$WORK/dr_tx.bpf.o" sec xdp ;;
    kernel)
        nsysctl d1 net/ipv4/ip_forward 1
        nsx d1 ip route replace "$VIP/32" \
            nexthop via "${RS_IP[r1]}" dev eth0 nexthop via "${RS_IP[r2]}" dev eth0 \
            nexthop via "${RS_IP[r3]}" dev eth0
        nsx d1 ethtool -K eth0 gro on >/dev/null
        ;;
    esac
    set_threaded d1 eth0
    read -r -a DIR_TASKS <<<"$(wait_napi "$before" eth0 "${WORKER_CPUS[@]:0:workers}")"
    [[ $v == xlb* ]] && DIR_TASKS+=("$XLB_PID")
    # Ready when a short burst reaches the sinks (this also warms xlb's flow table).
    for ((i = 0; i < 50; i++)); do
        [[ $v == xlb* ]] && ! alive "$XLB_PID" && {
            tail -n 20 "$WORK/xlb.log" >&2
            die "xlb exited"
        }
        local s0
        s0=$(sink_count)
        generate 0.3
        sleep 0.1
        if (($(sink_count) - s0 >= 256)); then
            ! grep -q "falling back to generic" "$WORK/xlb.log" 2>/dev/null ||
                die "variant $v: xlb attached in generic mode (see $WORK/xlb.log)"
            return 0
        fi
        sleep 0.1
    done
    die "variant $v: traffic did not reach the real servers within 10 s"
}

stop_variant() {
    case $1 in
    xlb*)
        stop_xlb
        nsx d1 ethtool -K eth0 gro off >/dev/null
        ;;
    xdp) nsx d1 ip link set dev eth0 xdpdrv off ;;
    kernel)
        nsx d1 ethtool -K eth0 gro off >/dev/null
        nsx d1 ip route del "$VIP/32" 2>/dev/null || true
        nsysctl d1 net/ipv4/ip_forward 0
        ;;
    esac
    sleep 0.2
}

# Frames d1's eth0 dropped after taking them off its ring (for xlb: a failed redirect
# into the AF_XDP socket, i.e. its RX ring full or its fill ring empty).
d1_drops() { nsx d1 ethtool -S eth0 | awk '$1 ~ /^rx_queue_[0-9]+_drops:$/ { s += $2 } END { print s + 0 }'; }

# sample_rss PID EVERY SECS: prints "seconds VmRSS_kB" at 0, EVERY, 2 EVERY, ... < SECS
# and once more at SECS (bounded by SECS; stops early if PID exits).
sample_rss() {
    local pid=$1 every=$2 secs=$3 t=0 kb
    while :; do
        kb=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null) || return 0
        [[ -n $kb ]] || return 0
        echo "$t $kb"
        ((t >= secs)) && return 0
        sleep $((t + every > secs ? secs - t : every))
        t=$((t + every > secs ? secs : t + every))
    done
}

# children_ns FILE: CPU ns (user + system) of finished children in the output of `times`
# (its second line, "XmY.YYYs XmY.YYYs").
children_ns() {
    awk 'NR == 2 { split($1, u, "m"); split($2, k, "m"); printf "%.0f\n", (u[1] * 60 + u[2] + k[1] * 60 + k[2]) * 1e9 }' "$1"
}

# measure VARIANT: prints "variant offered_mpps mpps task_ns_per_pkt core_ns_per_pkt
# core_busy% d1_drop% gen%" (gen%: the generators' CPU time, share of all cores)
measure() {
    local v=$1 s0 g0 t0 c0 b0 s1 g1 t1 b1 w0 w1 d0 d1
    s0=$(sink_count) g0=$(gen_sent) t0=$(task_ns "${DIR_TASKS[@]}") b0=$(cpu_busy "$DIR_CPU")
    d0=$(d1_drops)
    times >"$WORK/times0"
    w0=$(date +%s%N)
    local sampler=""
    if [[ -n $RSS_EVERY && $v == xlb* ]]; then
        sample_rss "$XLB_PID" "$RSS_EVERY" "$SECS" >>"$WORK/rss.log" &
        sampler=$!
    fi
    generate "$SECS"
    w1=$(date +%s%N)
    times >"$WORK/times1"
    if [[ -n $sampler ]]; then
        wait "$sampler" || true
        sed "s/^/rss $v /" "$WORK/rss.log" >&2
        : >"$WORK/rss.log"
        # The flow table's churn during the run (new flows, evictions, occupancy).
        nsx d1 curl -s -m 5 http://127.0.0.1:9650/metrics 2>/dev/null |
            grep -E '^xlb_worker_(new_flows_total|flow_evictions_total|flows)\{' |
            sed "s/^/rss $v /" >&2 || true
    fi
    sleep 0.3 # let queues drain into the sinks
    s1=$(sink_count) g1=$(gen_sent) t1=$(task_ns "${DIR_TASKS[@]}") b1=$(cpu_busy "$DIR_CPU")
    d1=$(d1_drops)
    c0=$(getconf CLK_TCK)
    local gn=$(($(children_ns "$WORK/times1") - $(children_ns "$WORK/times0")))
    awk -v v="$v" -v s=$((s1 - s0)) -v g=$((g1 - g0)) -v t=$((t1 - t0)) -v b=$((b1 - b0)) \
        -v w=$((w1 - w0)) -v hz="$c0" -v span=$((w1 - w0 + 300000000)) -v d=$((d1 - d0)) -v gn="$gn" -v ncpu="$NCPU" 'BEGIN {
        sec = w / 1e9
        core_ns = b / hz * 1e9
        printf "%-7s %8.3f %8.3f %9.0f %9.0f %6.1f %6.1f %6.1f\n", v, g / sec / 1e6, s / sec / 1e6,
            (s ? t / s : 0), (s ? core_ns / s : 0), 100 * core_ns / span, (g ? 100 * d / g : 0),
            100 * gn / (w * ncpu)
    }'
}

# ------------------------------------------------------------------ main

rm -rf "$WORK"
mkdir -p "$WORK"
build_bpf
write_trafgen
log "mode $MODE; generator on CPU $GEN_CPU, director on CPU $DIR_CPU; $RUNS runs of ${SECS}s per variant"
setup_lab

results=$WORK/results
: >"$results"
printf '%-4s %-7s %8s %8s %9s %9s %6s %6s %6s\n' run variant offered Mpps task_ns core_ns core% drop% gen% >&2
for ((r = 1; r <= RUNS; r++)); do
    for v in "${VARIANTS[@]}"; do
        start_variant "$v"
        line=$(measure "$v")
        stop_variant "$v"
        echo "$line" >>"$results"
        printf '%-4s %s\n' "$r" "$line" >&2
    done
done

echo
echo "medians of $RUNS runs (mode $MODE, 64-byte UDP, ${SECS}s each; task_ns = director tasks' CPU ns per forwarded packet, core_ns = DIR_CPU busy ns per packet):"
awk '
function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n[$1]++; k = n[$1]; g[$1, k] = $2; m[$1, k] = $3; tn[$1, k] = $4; cn[$1, k] = $5; gp[$1, k] = $8; order[$1] = order[$1] ? order[$1] : ++nv; names[nv] = names[nv] ? names[nv] : $1 }
END {
    printf "  %-7s %9s %9s %9s %9s %6s\n", "variant", "offered", "Mpps", "task_ns", "core_ns", "gen%"
    for (i = 1; i <= nv; i++) {
        v = names[i]
        for (k = 1; k <= n[v]; k++) { a[k] = g[v, k] }; G = median(a, n[v])
        for (k = 1; k <= n[v]; k++) { a[k] = m[v, k] }; M[v] = median(a, n[v])
        for (k = 1; k <= n[v]; k++) { a[k] = tn[v, k] }; T = median(a, n[v])
        for (k = 1; k <= n[v]; k++) { a[k] = cn[v, k] }; C = median(a, n[v])
        for (k = 1; k <= n[v]; k++) { a[k] = gp[v, k] }; GP = median(a, n[v])
        printf "  %-7s %9.3f %9.3f %9.0f %9.0f %6.1f\n", v, G, M[v], T, C, GP
    }
    if (("xlb" in M) && ("xdp" in M) && M["xdp"] > 0) printf "  xlb/xdp    = %.2f\n", M["xlb"] / M["xdp"]
    if (("xlb" in M) && ("kernel" in M) && M["kernel"] > 0) printf "  xlb/kernel = %.2f\n", M["xlb"] / M["kernel"]
    if (("xlb@1" in M) && ("xlb@2" in M) && M["xlb@1"] > 0) printf "  scaling xlb@2/xlb@1 = %.2f\n", M["xlb@2"] / M["xlb@1"]
}' "$results"
