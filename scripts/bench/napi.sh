# napi.sh: threaded NAPI pollers for the benchmark scripts (sourced; needs the caller's
# nsx HOST CMD... and die MSG). A veth has a NAPI context once it has an XDP program or
# GRO on; with threaded NAPI each rx queue gets a kthread napi/DEV-<napi id> that can be
# pinned, so that a benchmark can put "the director's work" on a core of its own.

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
