#!/usr/bin/env bash
# bench-http.sh: HTTP (wrk) and one TCP stream (iperf3) through the director, in the netns
# lab (issue 3 item 9): xlb vs going directly to one real server vs an nginx stream proxy
# in the director namespace (the seed's fallback when DR cannot work).
#
#   sudo scripts/bench-http.sh [RUNS]       (default 3 runs; prints a table and medians)
#
# Real servers: an nginx HTTP server in each of r1..r3 on port 8080 (bound to every
# address, so also to the VIP on lo; `return 200 "rN\n"`, no access log), fast enough that
# the director path, not Python, is what is measured (the lab's own lab-httpd.py stays on
# port 80), and `iperf3 -s` on r1 (port 5201). Variants, alternating in each run:
#   xlb     target/release/xlb in d1 (TCP VIP:8080 -> r1..r3, TCP VIP:5201 -> r1), DR;
#   direct  the client straight to r1 (10.99.0.11): one real server, no director;
#   nginx   nginx stream proxy in d1 listening on VIP:8080 (VIP on d1's eth0) -> r1..r3,
#           VIP:5201 -> r1; replies come back through nginx.
# Each variant: wrk new connections (`-H 'Connection: close'`), wrk keep-alive, and
# iperf3 one stream (IPERF=0 skips it). Medians of RUNS and the ratios xlb/direct and
# xlb/nginx are printed at the end.
#
# CPU placement (2 cores): wrk and the iperf3 client on CLIENT_CPU (0), the director
# (xlb or nginx) on DIR_CPU (1), including the receive side of d1's eth0: its NAPI
# poller runs threaded and pinned to DIR_CPU (NAPI=threaded, the default; for nginx GRO
# is turned on, which gives the veth a poller, as any NIC driver has). NAPI=softirq is
# the old placement: d1's receive work then runs in the sender's softirq, on the
# client's core. The real servers are not pinned. Everything shares two cores, so the
# real servers compete with both: ratios measured side by side are the result, absolute
# numbers are this machine's.
#
# Env: XLB_LAB (default "xbhttp"), XLB_BIN, SECS (per measurement, default 5), CONNS (wrk
# connections, default 32), CLIENT_CPU (0), DIR_CPU (1), IPERF (1), NAPI (threaded).
# Needs root, wrk, nginx (nginx-light + libnginx-mod-stream), iperf3. Traffic stays
# inside the lab's namespaces; the lab is torn down at the end, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT SCRIPTS=$ROOT/scripts
readonly BENCH=bench-http
# shellcheck source=bench/common.sh
. "$SCRIPTS/bench/common.sh"
readonly P=${XLB_LAB:-xbhttp}
readonly RUNS=${1:-3}
readonly SECS=${SECS:-5} CONNS=${CONNS:-32} IPERF=${IPERF:-1}
readonly CLIENT_CPU=${CLIENT_CPU:-0} DIR_CPU=${DIR_CPU:-1} NAPI=${NAPI:-threaded}
readonly XLB_BIN=${XLB_BIN:-$ROOT/target/release/xlb}
readonly WORK=/tmp/$P-bench
readonly VIP=10.99.0.100 HTTP_PORT=8080 IPERF_PORT=5201
readonly REALS=(r1 r2 r3)
declare -rA RS_IP=([r1]=10.99.0.11 [r2]=10.99.0.12 [r3]=10.99.0.13)
declare -rA RS_MAC=([r1]=02:99:00:00:00:11 [r2]=02:99:00:00:00:12 [r3]=02:99:00:00:00:13)
readonly STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so


[[ $RUNS =~ ^[1-9][0-9]?$ && $SECS =~ ^[1-9][0-9]?$ && $CONNS =~ ^[1-9][0-9]{0,3}$ &&
    $NAPI =~ ^(threaded|softirq)$ ]] || {
    sed -n '5,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 64
}
((EUID == 0)) || die "must run as root (network namespaces, XDP)"
for c in wrk nginx iperf3 taskset ip curl; do
    command -v "$c" >/dev/null || die "'$c' not found (run scripts/setup.sh)"
done
[[ -r $STREAM_MODULE ]] || die "$STREAM_MODULE missing (apt-get install libnginx-mod-stream)"
[[ -x $XLB_BIN ]] || die "$XLB_BIN not found: cargo build --release first"

# ------------------------------------------------------------------ processes

PIDS=() # everything this script started in the lab, by pid
XLB_PID="" NGINX_PID=""

cleanup() {
    set +e
    local pid
    stop_pid "$XLB_PID"
    stop_pid "$NGINX_PID"
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    XLB_LAB=$P "$SCRIPTS/lab.sh" down >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup

# nginx_conf DIR BODY: writes DIR/nginx.conf with BODY (http or stream blocks).
nginx_conf() {
    local dir=$1 body=$2
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
$body
EOF
}

# start_nginx HOST DIR [taskset-cpu]: starts nginx in HOST's namespace; prints its pid.
start_nginx() {
    local h=$1 dir=$2 cpu=${3:-}
    local -a pin=()
    [[ -n $cpu ]] && pin=(taskset -c "$cpu")
    ip netns exec "$P-$h" "${pin[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        </dev/null >"$dir/logs/stdout.log" 2>&1 &
    echo $!
}

setup_lab() {
    local h dir pid i
    XLB_LAB=$P "$SCRIPTS/lab.sh" up >"$WORK/lab.log" 2>&1 || {
        cat "$WORK/lab.log" >&2
        die "lab.sh up failed"
    }
    # Many short connections: let the client reuse TIME_WAIT ports.
    nsysctl c net/ipv4/tcp_tw_reuse 1
    nsysctl c net/ipv4/ip_local_port_range "10000 65000"
    for h in "${REALS[@]}"; do
        dir=$WORK/$h
        nginx_conf "$dir" "http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen $HTTP_PORT reuseport backlog=4096;
        location / { return 200 \"$h\\n\"; }
    }
}"
        pid=$(start_nginx "$h" "$dir")
        PIDS+=("$pid")
    done
    nsx r1 iperf3 -s -p "$IPERF_PORT" </dev/null >"$WORK/iperf3-server.log" 2>&1 &
    PIDS+=("$!")
    for h in "${REALS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            [[ $(nsx c curl -s -m 1 "http://${RS_IP[$h]}:$HTTP_PORT/" 2>/dev/null) == "$h" ]] && break
            ((i == 49)) && die "$h's nginx does not answer: $(cat "$WORK/$h/logs/error.log")"
            sleep 0.1
        done
    done
}

write_xlb_config() {
    local h
    {
        echo "# Generated by scripts/bench-http.sh for lab '$P'."
        echo "interface: eth0"
        echo "xdp_mode: native"
        echo "workers: { queues: all, cores: [$DIR_CPU], batch_size: 64, frames: 4096 }"
        echo "flows: { capacity: 1048576, tcp_timeout: 900s, tcp_fin_timeout: 30s, udp_timeout: 30s }"
        echo "metrics: { listen: \"127.0.0.1:9650\" }"
        echo "control_socket: $WORK/xlb.sock"
        echo "virtual_servers:"
        echo "  - { name: web, vip: $VIP, ports: [$HTTP_PORT], protocol: tcp, scheduler: maglev, table_size: 65537,"
        echo "      real_servers: ["
        for h in "${REALS[@]}"; do
            echo "        { address: ${RS_IP[$h]}, mac: \"${RS_MAC[$h]}\", weight: 1 },"
        done
        echo "      ] }"
        # iperf3 opens a control and a data connection: one real server only.
        echo "  - { name: iperf, vip: $VIP, ports: [$IPERF_PORT], protocol: tcp, scheduler: maglev, table_size: 65537,"
        echo "      real_servers: [ { address: ${RS_IP[r1]}, mac: \"${RS_MAC[r1]}\", weight: 1 } ] }"
    } >"$WORK/xlb.yaml"
    nginx_conf "$WORK/proxy" "stream {
    upstream web { $(for h in "${REALS[@]}"; do printf 'server %s:%s; ' "${RS_IP[$h]}" "$HTTP_PORT"; done)}
    server { listen $VIP:$HTTP_PORT reuseport backlog=4096; proxy_pass web; }
    server { listen $VIP:$IPERF_PORT; proxy_pass ${RS_IP[r1]}:$IPERF_PORT; }
}"
}

# ------------------------------------------------------------------ variants

target() { if [[ $1 == direct ]]; then echo "${RS_IP[r1]}"; else echo "$VIP"; fi; }

wait_http() {
    local t=$1 i
    for ((i = 0; i < 100; i++)); do
        nsx c curl -s -m 0.5 -o /dev/null "http://$t:$HTTP_PORT/" && return 0
        sleep 0.1
    done
    return 1
}

start_variant() {
    local before
    before=$(napi_threads)
    case $1 in
    xlb)
        ip netns exec "$P-d1" taskset -c "$DIR_CPU" "$XLB_BIN" run --config "$WORK/xlb.yaml" \
            </dev/null >>"$WORK/xlb.log" 2>&1 &
        XLB_PID=$!
        ;;
    nginx)
        nsx d1 ip addr add "$VIP/32" dev eth0
        NGINX_PID=$(start_nginx d1 "$WORK/proxy" "$DIR_CPU")
        [[ $NAPI == threaded ]] && nsx d1 ethtool -K eth0 gro on >/dev/null
        ;;
    esac
    if [[ $1 != direct && $NAPI == threaded ]]; then
        set_threaded d1 eth0
        wait_napi "$before" eth0 "$DIR_CPU" >/dev/null
    fi
    wait_http "$(target "$1")" || {
        tail -n 20 "$WORK/xlb.log" "$WORK/proxy/logs/error.log" 2>/dev/null >&2
        die "variant $1: no HTTP answer through $(target "$1")"
    }
}

stop_variant() {
    case $1 in
    xlb)
        stop_pid "$XLB_PID"
        XLB_PID=""
        ;;
    nginx)
        stop_pid "$NGINX_PID"
        NGINX_PID=""
        nsx d1 ethtool -K eth0 gro off >/dev/null
        nsx d1 ip addr del "$VIP/32" dev eth0 2>/dev/null || true
        ;;
    esac
    # The client must not keep the VIP's old neighbour entry's state in doubt.
    nsx c ip neigh flush to "$VIP" 2>/dev/null || true
}

# wrk_rps TARGET close|keepalive: requests per second (errors make it fail loudly).
wrk_rps() {
    local t=$1 mode=$2 out
    local -a hdr=()
    [[ $mode == close ]] && hdr=(-H 'Connection: close')
    out=$(timeout $((SECS + 30)) ip netns exec "$P-c" taskset -c "$CLIENT_CPU" \
        wrk -t1 -c"$CONNS" -d"${SECS}s" "${hdr[@]}" "http://$t:$HTTP_PORT/" 2>&1) || {
        echo "$out" >&2
        die "wrk failed"
    }
    echo "$out" >>"$WORK/wrk.log"
    if [[ $out == *"Non-2xx"* || $out == *"Socket errors"* ]]; then
        log "wrk reported errors against $t ($mode): $(grep -E 'Non-2xx|Socket errors' <<<"$out" | xargs)"
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

# iperf_gbps TARGET: one TCP stream for SECS, receiver's Gbit/s.
iperf_gbps() {
    local out
    out=$(timeout $((SECS + 30)) ip netns exec "$P-c" taskset -c "$CLIENT_CPU" \
        iperf3 -c "$1" -p "$IPERF_PORT" -t "$SECS" -J 2>&1) || {
        echo "$out" | tail -n 5 >&2
        die "iperf3 to $1 failed"
    }
    python3 -c 'import json, sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' <<<"$out"
}

# ------------------------------------------------------------------ main

rm -rf "$WORK"
mkdir -p "$WORK"
log "lab up; wrk/iperf3 on CPU $CLIENT_CPU, director on CPU $DIR_CPU; $RUNS runs, ${SECS}s per measurement, $CONNS connections; d1 NAPI $NAPI"
setup_lab
write_xlb_config

results=$WORK/results
: >"$results"
printf '%-4s %-7s %12s %12s %10s\n' run variant close_rps keepalive_rps iperf_Gbps >&2
for ((r = 1; r <= RUNS; r++)); do
    for v in xlb direct nginx; do
        start_variant "$v"
        t=$(target "$v")
        close=$(wrk_rps "$t" close)
        keep=$(wrk_rps "$t" keepalive)
        gbps=0
        ((IPERF)) && gbps=$(iperf_gbps "$t")
        stop_variant "$v"
        printf '%-4s %-7s %12s %12s %10s\n' "$r" "$v" "$close" "$keep" "$gbps" >&2
        echo "$v $close $keep $gbps" >>"$results"
    done
done

echo
echo "medians of $RUNS runs (wrk -t1 -c$CONNS ${SECS}s; iperf3 one stream ${SECS}s):"
awk '
function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n[$1]++; k = n[$1]; c[$1, k] = $2; ka[$1, k] = $3; ip[$1, k] = $4; if (!seen[$1]++) names[++nv] = $1 }
END {
    printf "  %-7s %12s %14s %11s\n", "variant", "close_req/s", "keepalive_req/s", "iperf_Gbps"
    for (i = 1; i <= nv; i++) {
        v = names[i]
        for (k = 1; k <= n[v]; k++) a[k] = c[v, k];  C[v] = median(a, n[v])
        for (k = 1; k <= n[v]; k++) a[k] = ka[v, k]; K[v] = median(a, n[v])
        for (k = 1; k <= n[v]; k++) a[k] = ip[v, k]; I[v] = median(a, n[v])
        printf "  %-7s %12.0f %14.0f %11.3f\n", v, C[v], K[v], I[v]
    }
    for (i = 1; i <= 2; i++) {
        o = i == 1 ? "direct" : "nginx"
        if (!(o in C) || !("xlb" in C)) continue
        printf "  xlb/%-6s new connections %.2f, keep-alive %.2f", o, (C[o] ? C["xlb"] / C[o] : 0), (K[o] ? K["xlb"] / K[o] : 0)
        if (I[o] > 0) printf ", iperf3 %.2f", I["xlb"] / I[o]
        printf "\n"
    }
}' "$results"
