# common.sh: helpers shared by the benchmark scripts (sourced after BENCH, the script's
# name for messages, and P, its lab prefix, are set).

log() { echo "$BENCH[$P]: $*" >&2; }
die() {
    echo "$BENCH[$P]: error: $*" >&2
    exit 1
}

# nsx HOST CMD...: CMD in the lab namespace of HOST.
nsx() {
    local h=$1
    shift
    ip netns exec "$P-$h" "$@"
}
# nsysctl HOST KEY VALUE: sysctl KEY (a path below /proc/sys) in HOST's namespace.
nsysctl() { nsx "$1" sh -c "echo '$3' > /proc/sys/$2"; }

# alive PID: the process exists and is neither a zombie nor dead.
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [[ -n $st && $st != [ZX] ]]
}

# stop_pid PID: SIGTERM, up to 5 s for it to exit, then SIGKILL; reaps it.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# Threaded NAPI pollers. A veth has a NAPI context once it has an XDP program or GRO on;
# with threaded NAPI each rx queue gets a kthread napi/DEV-<napi id> that can be pinned,
# so that a benchmark can put "the director's work" on a core of its own.

# set_threaded HOST DEV: threaded NAPI on DEV (the kernel refuses it until the veth has a
# NAPI context, i.e. an XDP program or GRO; then it starts one kthread per queue).
set_threaded() {
    local i
    for ((i = 0; i < 50; i++)); do
        nsx "$1" sh -c "echo 1 > /sys/class/net/$2/threaded" 2>/dev/null && return 0
        sleep 0.1
    done
    die "cannot turn on threaded NAPI on $1's $2"
}

napi_threads() { pgrep '^napi/' | sort || true; }

# wait_napi BEFORE NAME CPU...: waits (up to 5 s) for one new kernel thread
# napi/NAME-<napi id> per CPU given (one per rx queue) that was not in BEFORE, pins the
# i-th (in NAPI id order, which is queue order) to the i-th CPU and prints their pids.
wait_napi() {
    local before=$1 name=$2 i new pid c
    shift 2
    for ((i = 0; i < 50; i++)); do
        new=()
        for pid in $(comm -13 <(echo "$before") <(napi_threads)); do
            c=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
            [[ $c == "napi/$name-"* ]] && new+=("${c##*-} $pid")
        done
        if ((${#new[@]} == $#)); then
            mapfile -t new < <(printf '%s\n' "${new[@]}" | sort -n | cut -d' ' -f2)
            for pid in "${new[@]}"; do
                taskset -p -c "$1" "$pid" >/dev/null
                shift
            done
            echo "${new[*]}"
            return 0
        fi
        ((${#new[@]} > $#)) && die "more new napi/$name threads than queues (another lab?); rerun"
        sleep 0.1
    done
    die "no threaded NAPI poller napi/$name appeared"
}
