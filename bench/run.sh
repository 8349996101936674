#!/usr/bin/env bash
# bench/run.sh: autopilot, tini and dumb-init side by side, each wrapping the
# same APP as PID 1 of its own PID namespace. Prints one Markdown table and
# writes it to bench/results.md. What each figure means: bench/README.md.
#
#   bench/run.sh [--quick] [--no-build]
#   AUTOPILOT=/path/to/autopilot bench/run.sh --no-build   (measure another build)
#
# Needs root (PID and mount namespaces), gcc, and Debian's apt-get the first
# time (tini, dumb-init and hyperfine are installed when missing).
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
AUTOPILOT=${AUTOPILOT:-$REPO_DIR/target/x86_64-unknown-linux-gnu/release/autopilot}
RESULTS=$BENCH_DIR/results.md

QUICK=0
BUILD=1
INNER=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --inner) INNER=1 ;; # internal: already inside the private mount namespace
        -h | --help)
            sed -n '2,10s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "run.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

die() {
    echo "run.sh: $*" >&2
    exit 1
}

log() {
    echo "run.sh: $*" >&2
}

# ---- setup (outside the namespace) -------------------------------------------

install_packages() {
    local missing=()
    command -v tini > /dev/null && command -v tini-static > /dev/null || missing+=(tini)
    command -v dumb-init > /dev/null || missing+=(dumb-init)
    command -v hyperfine > /dev/null || missing+=(hyperfine)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini dumb-init hyperfine > /dev/null
    fi
}

build_autopilot() {
    log "building autopilot (release)"
    (cd "$REPO_DIR" && cargo build --release --quiet)
}

if ((!INNER)); then
    (($(id -u) == 0)) || die "run me as root: every init runs as PID 1 of a new PID namespace"
    command -v gcc > /dev/null || die "gcc is needed to build the helpers"
    install_packages
    ((BUILD)) && build_autopilot
    [[ -x $AUTOPILOT ]] || die "no release binary at $AUTOPILOT"
    # Measure inside a private mount namespace with its own /run, so that
    # autopilot's default control socket (/var/run/containerpilot.socket)
    # never meets another autopilot running on this host. The namespace goes
    # away with this process.
    exec unshare --mount --propagation private -- "$BASH" "$0" --inner "$@"
fi

mount -t tmpfs -o size=4m,mode=755 bench-run /run

# ---- parameters ------------------------------------------------------------------

if ((QUICK)); then
    ROUNDS=4 STARTUP_PER_ROUND=10 SIGNAL_PER_ROUND=5 HYPERFINE_RUNS=40
    ORPHAN_RUNS=1 THROUGHPUT_MIB=500 THROUGHPUT_RUNS=1 IDLE_SECONDS=3 HEALTH_SECONDS=5
else
    ROUNDS=10 STARTUP_PER_ROUND=30 SIGNAL_PER_ROUND=20 HYPERFINE_RUNS=200
    ORPHAN_RUNS=5 THROUGHPUT_MIB=2000 THROUGHPUT_RUNS=5 IDLE_SECONDS=10 HEALTH_SECONDS=20
fi
ORPHANS=2000
# The busy configuration: this many jobs, each health-checked every second.
HEALTH_JOBS=100
# docs/design.md, "Performance targets": autopilot's idle RSS with 10 jobs.
IDLE_RSS_TARGET_KIB=4096
# The busy configuration's stated budget (bench/README.md): autopilot's peak
# RSS and its own CPU.
HEALTH_RSS_TARGET_KIB=8192
HEALTH_CPU_TARGET_PERCENT=10

# The inits, in column order; "none" is the APP alone as PID 1 (a baseline).
INITS=(autopilot tini dumb-init tini-static)
CMD_autopilot=("$AUTOPILOT" --)
CMD_tini=(/usr/bin/tini --)
CMD_dumb_init=(/usr/bin/dumb-init)
CMD_tini_static=(/usr/bin/tini-static --)
CMD_none=()
COLUMNS_ORDER=(autopilot tini dumb-init ratio tini-static none)
declare -A COLUMN_TITLE=(
    [autopilot]=autopilot [tini]=tini [dumb-init]=dumb-init
    [ratio]="autopilot/tini" [tini-static]="tini-static" [none]="no init (APP alone)"
)

# ---- processes and cleanup ---------------------------------------------------------

WORK=$(mktemp -d /tmp/autopilot-bench.XXXXXX)
# Processes this script started and has not reaped yet: the command run() is
# waiting for, and the unshares of the idle measurement. Each is a harness,
# hyperfine or an unshare, and each takes its PID namespace down with it when
# it dies (parent-death signal), so SIGKILL leaves nothing behind. Reaped
# pids are dropped at once, so a recycled pid is never signalled.
RUNNING=""
BACKGROUND=()

cleanup() {
    local pid
    for pid in $RUNNING "${BACKGROUND[@]}"; do
        kill -KILL "$pid" 2> /dev/null || true
        { wait "$pid" || true; } 2> /dev/null
    done
    umount /run 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits for it, so that a signal to this
# script runs the traps at once (and cleanup stops the command).
run() {
    local status=0
    "$@" &
    RUNNING=$!
    wait "$RUNNING" || status=$?
    RUNNING=""
    return "$status"
}

# ---- results -------------------------------------------------------------------------

ROWS=()
declare -A CELL NUMBER

# row ROW_TITLE: starts a row (rows print in the order they were started).
row() {
    ROWS+=("$1")
}

# cell ROW COLUMN TEXT [NUMBER]: NUMBER (if any) feeds the autopilot/tini ratio.
cell() {
    CELL["$1|$2"]=$3
    if (($# > 3)); then
        NUMBER["$1|$2"]=$4
    fi
}

fill_ratios() {
    local row a t
    for row in "${ROWS[@]}"; do
        a=${NUMBER["$row|autopilot"]:-}
        t=${NUMBER["$row|tini"]:-}
        if [[ -n $a && -n $t ]]; then
            CELL["$row|ratio"]=$(awk -v a="$a" -v t="$t" 'BEGIN { if (t == 0) print (a == 0 ? "1.00×" : "—"); else printf "%.2f×", a / t }')
        fi
    done
}

# stats FILE COLUMN: "median p90" of a column of numbers (nearest rank).
stats() {
    awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '
        function rank(p) { r = p * NR; return (r == int(r)) ? r : int(r) + 1 }
        { v[NR] = $1 }
        END { if (NR == 0) print "nan nan"; else print v[rank(0.5)], v[rank(0.9)] }'
}

us() { awk -v n="$1" 'BEGIN { printf "%.0f", n / 1000 }'; }
ms() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1000000 }'; }

# ---- helpers ---------------------------------------------------------------------------

log "compiling the helpers"
gcc -O2 -Wall -static -o "$WORK/app" "$BENCH_DIR/app.c"
gcc -O2 -Wall -o "$WORK/launch" "$BENCH_DIR/launch.c"
APP=$WORK/app
LAUNCH=$WORK/launch

# command_of NAME: sets CMD to the argv prefix that starts init NAME.
command_of() {
    local -n prefix="CMD_${1//-/_}"
    CMD=("${prefix[@]}")
}

# ---- binary size -----------------------------------------------------------------------

measure_size() {
    local name path bytes linking
    row "binary size"
    row "linking"
    for name in "${INITS[@]}"; do
        command_of "$name"
        path=${CMD[0]}
        bytes=$(stat -c %s "$path")
        cell "binary size" "$name" "$(awk -v b="$bytes" 'BEGIN { printf "%.0f KiB", b / 1024 }') ($bytes B)" "$bytes"
        case $(file -b "$path") in
            *static-pie*) linking="static (static-pie)" ;;
            *statically*) linking=static ;;
            *dynamically*) linking=dynamic ;;
            *) linking=unknown ;;
        esac
        cell linking "$name" "$linking"
    done
}

# ---- startup ------------------------------------------------------------------------------

# launch_rounds MODE PER_ROUND APP_ARGS...: runs the harness in rounds, each
# running every init (and the APP alone) PER_ROUND times, so that load from
# elsewhere on the machine falls on all of them alike. Appends each init's
# samples to $WORK/MODE.NAME; a failure leaves $WORK/MODE.NAME.failed.
launch_rounds() {
    local mode=$1 per_round=$2 round name
    shift 2
    for round in $(seq "$ROUNDS"); do
        for name in "${INITS[@]}" none; do
            command_of "$name"
            run "$LAUNCH" "$mode" "$per_round" -- "${CMD[@]}" "$APP" "$@" \
                >> "$WORK/$mode.$name" 2>> "$WORK/stderr.log" || echo failed >> "$WORK/$mode.$name.failed"
        done
    done
}

# latency_row TITLE MODE COLUMN: a row of "median / p90" in µs of the samples'
# COLUMN (nanoseconds), for every init and the APP alone.
latency_row() {
    local title=$1 mode=$2 column=$3 name median p90
    row "$title"
    for name in "${INITS[@]}" none; do
        if [[ -e $WORK/$mode.$name.failed ]]; then
            cell "$title" "$name" error
            continue
        fi
        read -r median p90 < <(stats "$WORK/$mode.$name" "$column")
        cell "$title" "$name" "$(us "$median") / $(us "$p90")" "$median"
    done
}

measure_startup() {
    log "startup: $((ROUNDS * STARTUP_PER_ROUND)) runs per init"
    launch_rounds startup "$STARTUP_PER_ROUND" stamp
    latency_row "startup: execve(init) → APP's main(), median / p90 (µs)" startup 1
    latency_row "\`init APP\` end to end: execve(init) → init reaped, median / p90 (µs)" startup 2
}

# hyperfine runs one command at a time, so it is called once per round (each
# round runs every init) and the per-run times of all rounds are pooled.
measure_hyperfine() {
    local name commands=() round i median p90 per_round=$((HYPERFINE_RUNS / ROUNDS))
    local title="\`unshare --pid --fork --mount-proc INIT true\` (hyperfine), median / p90 (ms)"
    log "hyperfine: $((per_round * ROUNDS)) runs of unshare … INIT true per init"
    for name in "${INITS[@]}" none; do
        command_of "$name"
        commands+=("unshare --pid --fork --mount-proc --kill-child ${CMD[*]} /bin/true")
    done
    row "$title"
    for round in $(seq "$ROUNDS"); do
        if ! run hyperfine -N --style none --warmup 3 --runs "$per_round" \
            --export-json "$WORK/hyperfine.json" "${commands[@]}" > /dev/null 2>> "$WORK/hyperfine.log"; then
            cell "$title" autopilot error
            tail -3 "$WORK/hyperfine.log" >> "$WORK/stderr.log"
            return
        fi
        i=0
        for name in "${INITS[@]}" none; do
            python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["times"]:
    print(int(t * 1e9))' "$WORK/hyperfine.json" "$i" >> "$WORK/hyperfine.$name"
            i=$((i + 1))
        done
    done
    for name in "${INITS[@]}" none; do
        read -r median p90 < <(stats "$WORK/hyperfine.$name" 1)
        cell "$title" "$name" "$(awk -v m="$median" -v p="$p90" 'BEGIN { printf "%.2f / %.2f", m / 1e6, p / 1e6 }')" "$median"
    done
}

# ---- signal forwarding ----------------------------------------------------------------------

measure_signal() {
    log "SIGTERM forwarding: $((ROUNDS * SIGNAL_PER_ROUND)) runs per init"
    launch_rounds signal "$SIGNAL_PER_ROUND" sigterm
    latency_row "SIGTERM forwarding: kill(init) → APP's handler, median / p90 (µs)" signal 1
}

# ---- reaping ---------------------------------------------------------------------------------

measure_orphans() {
    local run_number name median p90 left
    local title="reap $ORPHANS orphans: release → none left, median (ms)"
    local left_title="zombies left after reaping (worst run)"
    log "reaping: $ORPHAN_RUNS × $ORPHANS orphans per init"
    for run_number in $(seq "$ORPHAN_RUNS"); do
        for name in "${INITS[@]}"; do
            command_of "$name"
            run "$LAUNCH" orphans 1 "$ORPHANS" -- "${CMD[@]}" "$APP" orphans "$ORPHANS" \
                >> "$WORK/orphans.$name" 2>> "$WORK/stderr.log" || echo "failed" >> "$WORK/orphans.$name.failed"
        done
    done
    row "$title"
    row "$left_title"
    for name in "${INITS[@]}"; do
        if [[ -e $WORK/orphans.$name.failed ]]; then
            cell "$title" "$name" error
            continue
        fi
        read -r median p90 < <(stats "$WORK/orphans.$name" 1)
        left=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/orphans.$name")
        cell "$title" "$name" "$(ms "$median")" "$median"
        cell "$left_title" "$name" "$left of $ORPHANS"
    done
}

# ---- stdout throughput ------------------------------------------------------------------------

measure_throughput() {
    local run_number name started finished bytes best expected=$((THROUGHPUT_MIB * 1048576))
    local title="APP stdout through a pipe ($THROUGHPUT_MIB MiB, dd piped to wc -c), best of $THROUGHPUT_RUNS (MiB/s)"
    log "throughput: $THROUGHPUT_RUNS × $THROUGHPUT_MIB MiB per init"
    for run_number in $(seq "$THROUGHPUT_RUNS"); do
        for name in "${INITS[@]}" none; do
            command_of "$name"
            started=$EPOCHREALTIME
            bytes=$(unshare --pid --fork --mount-proc --kill-child "${CMD[@]}" \
                dd if=/dev/zero bs=1M count="$THROUGHPUT_MIB" status=none 2>> "$WORK/stderr.log" | wc -c) || true
            finished=$EPOCHREALTIME
            if ((bytes != expected)); then
                echo "$name passed $bytes bytes instead of $expected" >> "$WORK/throughput.$name.failed"
            fi
            awk -v s="$started" -v f="$finished" -v m="$THROUGHPUT_MIB" 'BEGIN { printf "%.0f\n", m / (f - s) }' >> "$WORK/throughput.$name"
        done
    done
    row "$title"
    for name in "${INITS[@]}" none; do
        if [[ -e $WORK/throughput.$name.failed ]]; then
            cell "$title" "$name" "error: $(head -1 "$WORK/throughput.$name.failed")"
            continue
        fi
        best=$(sort -n "$WORK/throughput.$name" | tail -1)
        cell "$title" "$name" "$best" "$best"
    done
}

# ---- memory and idle cost ---------------------------------------------------------------------

# start_in_namespace KEY ARGV...: starts ARGV as PID 1 of a new PID namespace
# in the background; sets HOST_PID[KEY] to the init's pid as seen from here
# and UNSHARE_PID[KEY] to its parent's (killing that one takes the whole
# namespace down). Returns 1 if no init shows up within 10 s.
declare -A HOST_PID UNSHARE_PID
start_in_namespace() {
    local key=$1 unshare_pid init_pid="" deadline
    shift
    unshare --pid --fork --mount-proc --kill-child "$@" < /dev/null > /dev/null 2>> "$WORK/stderr.log" &
    unshare_pid=$!
    BACKGROUND+=("$unshare_pid")
    UNSHARE_PID[$key]=$unshare_pid
    deadline=$((SECONDS + 10))
    # unshare forks once: its only child is the init (PID 1 inside).
    while [[ -z $init_pid ]] && ((SECONDS < deadline)); do
        init_pid=$(pgrep -P "$unshare_pid" || true)
        [[ -n $init_pid ]] || sleep 0.01
    done
    [[ -n $init_pid ]] || return 1
    HOST_PID[$key]=$init_pid
}

# wait_for_children PID COUNT: until the init has COUNT children (its APP or
# jobs have been started). Returns 1 after 10 s.
wait_for_children() {
    local deadline=$((SECONDS + 10))
    while (($(pgrep -c -P "$1" || true) < $2)); do
        ((SECONDS < deadline)) || return 1
        sleep 0.01
    done
}

# sample PID: "cpu_ticks on_cpu_ns context_switches threads" for a process,
# CPU and switches summed over its threads.
sample() {
    local pid=$1 stat fields task ticks runtime=0 switches=0 threads=0 value
    read -r stat < "/proc/$pid/stat"
    read -ra fields <<< "${stat##*) }" # fields[0] is field 3 (state)
    ticks=$((fields[11] + fields[12]))   # utime (14) + stime (15), whole thread group
    for task in /proc/"$pid"/task/*; do
        read -r value _ < "$task/schedstat"
        runtime=$((runtime + value))
        value=$(awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s }' "$task/status")
        switches=$((switches + value))
        threads=$((threads + 1))
    done
    echo "$ticks $runtime $switches $threads"
}

# difference "A1 A2 A3 ..." "B1 B2 B3 ...": "A1-B1 A2-B2 A3-B3".
difference() {
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%d ", x[i] - y[i] }'
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

config_loading_available() {
    local probe=$WORK/probe.json
    printf '{ jobs: [ { name: "probe", exec: "true" } ] }\n' > "$probe"
    "$AUTOPILOT" --check -config "$probe" > /dev/null 2>&1
}

# write_jobs_config FILE COUNT INTERVAL: COUNT jobs that each run `sleep`
# and are health-checked every INTERVAL seconds by running `true` (no catalog).
write_jobs_config() {
    local i
    {
        echo "{"
        echo "  control: { socket: \"/run/bench-$2-$3.socket\" },"
        echo "  jobs: ["
        for i in $(seq "$2"); do
            echo "    { name: \"job-$i\", exec: \"sleep 3600\", health: { exec: \"true\", interval: $3, ttl: $(($3 * 2)) } },"
        done
        echo "  ]"
        echo "}"
    } > "$1"
}

# evict_from_page_cache FILE...: drops the files' pages from the page cache
# (unless a running process maps them), so that an init's code comes in as at
# a container's first start, through readahead, and not in whatever pieces
# the build or an earlier run left behind: how much of a binary is resident
# depends on that (the kernel maps whole cached folios, and 64 KiB around
# every fault), and would otherwise change from one run to the next.
evict_from_page_cache() {
    local file
    for file in "$@"; do
        dd if="$file" iflag=nocache count=0 status=none 2> /dev/null || true
    done
}

JOBS_ROW_COUNTS=(10 100)
JOBS_ROW_INTERVAL=5
jobs_row() { echo "autopilot -config with $1 jobs health-checked every ${JOBS_ROW_INTERVAL} s: peak RSS (KiB) / context switches over ${IDLE_SECONDS} s"; }

measure_idle() {
    local name key after ticks runtime switches threads jobs children peak anon file
    local rss="peak RSS wrapping \`sleep\` (VmHWM, KiB)"
    local split="RSS at the end: anonymous / file-backed (KiB)"
    local cpu="idle CPU over ${IDLE_SECONDS} s: utime+stime ticks / on-CPU time (µs)"
    local wakeups="idle context switches over ${IDLE_SECONDS} s (voluntary + involuntary)"
    local thread_row="threads"
    local configs=0
    row "$rss"
    row "$split"
    row "$thread_row"
    row "$cpu"
    row "$wakeups"
    for jobs in "${JOBS_ROW_COUNTS[@]}"; do
        row "$(jobs_row "$jobs")"
    done
    if config_loading_available; then
        configs=1
    else
        for jobs in "${JOBS_ROW_COUNTS[@]}"; do
            cell "$(jobs_row "$jobs")" autopilot "n/a (config loading not available)"
        done
    fi

    log "idle: all inits side by side for $IDLE_SECONDS s"
    for name in "${INITS[@]}"; do
        command_of "$name"
        evict_from_page_cache "${CMD[0]}"
    done
    for name in "${INITS[@]}"; do
        command_of "$name"
        start_in_namespace "$name" "${CMD[@]}" sleep 3600 || log "$name did not start"
    done
    if ((configs)); then
        for jobs in "${JOBS_ROW_COUNTS[@]}"; do
            write_jobs_config "$WORK/jobs-$jobs.json5" "$jobs" "$JOBS_ROW_INTERVAL"
            start_in_namespace "jobs-$jobs" "$AUTOPILOT" -config "$WORK/jobs-$jobs.json5" || log "autopilot with $jobs jobs did not start"
        done
    fi
    declare -A BEFORE
    for key in "${!HOST_PID[@]}"; do
        # An init wraps one APP; autopilot -config runs one process per job.
        case $key in
            jobs-*) children=${key#jobs-} ;;
            *) children=1 ;;
        esac
        if wait_for_children "${HOST_PID[$key]}" "$children"; then
            BEFORE[$key]=$(sample "${HOST_PID[$key]}")
        else
            log "$key: its $children children did not all start"
        fi
    done
    sleep "$IDLE_SECONDS"
    for key in "${!HOST_PID[@]}"; do
        [[ -n ${BEFORE[$key]:-} ]] || continue
        after=$(sample "${HOST_PID[$key]}")
        read -r ticks runtime switches _ <<< "$(difference "$after" "${BEFORE[$key]}")"
        threads=${after##* }
        peak=$(status_kib "${HOST_PID[$key]}" VmHWM)
        anon=$(status_kib "${HOST_PID[$key]}" RssAnon)
        file=$(status_kib "${HOST_PID[$key]}" RssFile)
        case $key in
            jobs-10)
                cell "$(jobs_row 10)" autopilot "$peak ($(verdict "$peak" "$IDLE_RSS_TARGET_KIB")) / $switches"
                ;;
            jobs-*)
                cell "$(jobs_row "${key#jobs-}")" autopilot "$peak / $switches"
                ;;
            *)
                cell "$rss" "$key" "$peak" "$peak"
                cell "$split" "$key" "$anon / $file" "$anon"
                cell "$thread_row" "$key" "$threads"
                cell "$cpu" "$key" "$ticks / $((runtime / 1000))" "$runtime"
                cell "$wakeups" "$key" "$switches" "$switches"
                ;;
        esac
    done
    # unshare blocks SIGTERM while it waits; SIGKILL it, and --kill-child
    # sends the init SIGKILL, which ends the whole namespace.
    for key in "${!UNSHARE_PID[@]}"; do
        kill -KILL "${UNSHARE_PID[$key]}" 2> /dev/null || true
        { wait "${UNSHARE_PID[$key]}" || true; } 2> /dev/null # no "Killed" notice
    done
    BACKGROUND=()
    if ((configs)); then
        for jobs in "${JOBS_ROW_COUNTS[@]}"; do
            [[ -n ${BEFORE[jobs-$jobs]:-} ]] || cell "$(jobs_row "$jobs")" autopilot "error: the jobs did not start"
        done
    fi
}

# ---- a busy configuration ---------------------------------------------------------------------

# last_pid PID: the last pid handed out in the PID namespace whose init is
# PID (it grows by one per process started there). ns_last_pid answers for
# the namespace of the process reading it, so the reader (cat, which counts
# itself) runs inside.
last_pid() { nsenter --target "$1" --pid cat /proc/sys/kernel/ns_last_pid; }

# verdict VALUE TARGET: "within target" or "OVER TARGET".
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "within target" : "OVER TARGET" }'; }

measure_health() {
    local title="autopilot -config with $HEALTH_JOBS jobs health-checked every second, over $HEALTH_SECONDS s: peak RSS (KiB) / own CPU (% of one core) / checks run"
    local pid before after runtime pids_before pids_after peak cpu
    row "$title"
    if ! config_loading_available; then
        cell "$title" autopilot "n/a (config loading not available)"
        return
    fi
    log "busy: $HEALTH_JOBS jobs health-checked every second for $HEALTH_SECONDS s"
    write_jobs_config "$WORK/health.json5" "$HEALTH_JOBS" 1
    evict_from_page_cache "$AUTOPILOT"
    if ! start_in_namespace health "$AUTOPILOT" -config "$WORK/health.json5" ||
        ! wait_for_children "${HOST_PID[health]}" "$HEALTH_JOBS"; then
        cell "$title" autopilot "error: the jobs did not start"
        return
    fi
    pid=${HOST_PID[health]}
    sleep 2 # every job's first check has run: measure the steady state
    before=$(sample "$pid")
    pids_before=$(last_pid "$pid")
    sleep "$HEALTH_SECONDS"
    after=$(sample "$pid")
    pids_after=$(last_pid "$pid")
    read -r _ runtime _ <<< "$(difference "$after" "$before")"
    peak=$(status_kib "$pid" VmHWM)
    cpu=$(awk -v r="$runtime" -v s="$HEALTH_SECONDS" 'BEGIN { printf "%.1f", r / (s * 1e9) * 100 }')
    cell "$title" autopilot "$peak ($(verdict "$peak" "$HEALTH_RSS_TARGET_KIB")) / $cpu % ($(verdict "$cpu" "$HEALTH_CPU_TARGET_PERCENT")) / $((pids_after - pids_before - 1)) (expected $((HEALTH_JOBS * HEALTH_SECONDS)))"
    kill -KILL "${UNSHARE_PID[health]}" 2> /dev/null || true
    { wait "${UNSHARE_PID[health]}" || true; } 2> /dev/null
    BACKGROUND=()
}

# ---- the report -----------------------------------------------------------------------------------

print_table() {
    local row column line
    line="| metric |"
    for column in "${COLUMNS_ORDER[@]}"; do
        line+=" ${COLUMN_TITLE[$column]} |"
    done
    echo "$line"
    line="|---|"
    for column in "${COLUMNS_ORDER[@]}"; do
        line+="---:|"
    done
    echo "$line"
    for row in "${ROWS[@]}"; do
        line="| $row |"
        for column in "${COLUMNS_ORDER[@]}"; do
            line+=" ${CELL["$row|$column"]:-—} |"
        done
        echo "$line"
    done
}

report() {
    local cpu_model
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "# autopilot vs tini vs dumb-init"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- kernel: $(uname -srm)"
    echo "- CPU: ${cpu_model:-unknown} ($(nproc) CPUs online); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- autopilot $("$AUTOPILOT" -version 2> /dev/null | awk '{ printf "%s%s", sep, $2; sep = " git " }'), $(tini --version 2> /dev/null | head -1), dumb-init $(dumb-init --version 2>&1 | head -1 | awk '{ print $2 }')"
    echo "- mode: $( ((QUICK)) && echo quick || echo full): $((ROUNDS * STARTUP_PER_ROUND)) startups, $((ROUNDS * SIGNAL_PER_ROUND)) signals, $ORPHAN_RUNS × $ORPHANS orphans, $THROUGHPUT_RUNS × $THROUGHPUT_MIB MiB per init; the APP is bench/app.c (static); see bench/README.md"
    echo "- targets: idle RSS ≤ $IDLE_RSS_TARGET_KIB KiB with 10 jobs and startup within 1.5× tini's (docs/design.md, "Performance targets"); $HEALTH_JOBS jobs health-checked every second: peak RSS ≤ $HEALTH_RSS_TARGET_KIB KiB and ≤ $HEALTH_CPU_TARGET_PERCENT % of one core (bench/README.md)"
    echo
    print_table
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
measure_size
measure_startup
measure_hyperfine
measure_signal
measure_orphans
measure_throughput
measure_idle
measure_health
fill_ratios
report | tee "$RESULTS"
if [[ -s $WORK/stderr.log ]]; then
    log "stderr of the runs (last lines):"
    tail -5 "$WORK/stderr.log" >&2
fi
