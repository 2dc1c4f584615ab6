#!/usr/bin/env bash
# Gatehouse benchmarks against nginx and HAProxy, all on loopback.
#
#   bench/run.sh [scenario...]     scenarios: reverse idle load tls pools
#                                  cache cache_mem evict static hardening
#                                  forward connect sticky (default: all)
#
# After the scenarios, bench/lib/report.py writes bench/results/REPORT.md
# (every scenario's latest tables, the machine, gnuplot charts).
#
# Each peer is our own process with our own config in a temp dir; the proxy
# under test is pinned to one core (BENCH_PROXY_CPU, default 0), the origin and
# the load generator to the other (BENCH_LOAD_CPU, default 1). Every process
# started here is stopped on exit, error or Ctrl-C. See bench/README.md for the
# method and how each number is computed.
#
# Knobs (environment):
#   BENCH_ROUNDS=3        interleaved rounds of the reverse scenario (median)
#   BENCH_DURATION=10     seconds of each timed wrk run
#   BENCH_WARMUP=2        seconds of the warm-up run before each timed run
#   BENCH_CONNS=50        wrk connections
#   BENCH_QUIET_WAIT=20   max seconds to wait for idle cores before a timed run
#   BENCH_IDLE_CONNS=10000  connections held open in the idle scenario
#   BENCH_IDLE_BUDGET=120   seconds the whole idle scenario may take
#   BENCH_IDLE_ROUNDS=3     idle measurements per peer (median)
#   BENCH_LOAD_LEVELS="1 4 16 64 256"  wrk connections of the load scenario
#   BENCH_LOAD_DURATION=5 seconds of each timed run of the load scenario
#   BENCH_PEERS="gatehouse nginx haproxy"
#   GATEHOUSE_BIN=build/release/gatehouse
#   BENCH_RESULTS=bench/results   where <scenario>-<date>.md goes
#   BENCH_KEEP_TMP=1      keep the temp dir (configs, logs, raw wrk output)
#   BENCH_CACHE_PEERS="gatehouse varnish nginx haproxy"   (cache scenario)
#   BENCH_CACHE_OBJECTS=50000  distinct 1 KiB objects (cache_mem)
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
LIB=$BENCH/lib
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
HAPROXY=/usr/sbin/haproxy
WRK=/usr/bin/wrk
VARNISHD=/usr/sbin/varnishd

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-50}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_BUDGET=${BENCH_IDLE_BUDGET:-120}
IDLE_ROUNDS=${BENCH_IDLE_ROUNDS:-3}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
read -ra WANT_PEERS <<<"${BENCH_PEERS:-gatehouse nginx haproxy}"
GH_BIN=${GATEHOUSE_BIN:-$ROOT/build/release/gatehouse}
RESULTS=${BENCH_RESULTS:-$BENCH/results}
DATE=$(date +%F)
LOAD_LEVELS=${BENCH_LOAD_LEVELS:-1 4 16 64 256}
LOAD_DURATION=${BENCH_LOAD_DURATION:-5}
ALL_SCENARIOS=(reverse idle load tls pools cache cache_mem evict static hardening forward connect sticky)
H2LOAD=/usr/bin/h2load
CONF_SUFFIX=""   # "-tls": the peers' TLS configs (scenario tls)
SCHEME=http
read -ra CACHE_PEERS <<<"${BENCH_CACHE_PEERS:-gatehouse varnish nginx haproxy}"
CACHE_OBJECTS=${BENCH_CACHE_OBJECTS:-50000}

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ arguments
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=("${ALL_SCENARIOS[@]}")
for s in "${SCENARIOS[@]}"; do
    case $s in
    reverse | idle | load | tls | pools | cache | cache_mem | evict | static | hardening | forward | connect | sticky) ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown scenario '$s' (known: ${ALL_SCENARIOS[*]})" ;;
    esac
done
for tool in "$NGINX" "$HAPROXY" "$WRK" "$PY" taskset curl ps timeout; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/deps.sh"
done
[[ $(nproc) -ge 2 ]] || say "bench: warning: $(nproc) CPU(s); pinning proxy and load to one core"
[[ $(nproc) -ge 2 ]] || LOAD_CPU=$PROXY_CPU

# The command that reproduces this run, for the results file.
repro_cmd() {
    local env="" v
    for v in BENCH_ROUNDS BENCH_DURATION BENCH_WARMUP BENCH_CONNS \
        BENCH_IDLE_CONNS BENCH_IDLE_BUDGET BENCH_IDLE_ROUNDS BENCH_PEERS BENCH_PROXY_CPU \
        BENCH_LOAD_CPU BENCH_QUIET_WAIT BENCH_LOAD_LEVELS BENCH_LOAD_DURATION \
        BENCH_CACHE_PEERS BENCH_CACHE_OBJECTS BENCH_FWD_PEERS \
        BENCH_CONNECT_BYTES BENCH_CONNECT_ROUNDS; do
        [[ -n ${!v:-} ]] && env+="$v=${!v} "
    done
    if [[ -n ${MAKELEVEL:-} && $# -eq 0 && -z $env ]]; then
        echo "make bench"
    elif [[ -n ${MAKELEVEL:-} && $# -eq 0 ]]; then
        echo "${env}make bench"
    else
        echo "${env}bench/run.sh ${SCENARIOS[*]}"
    fi
}
REPRO=$(repro_cmd "$@")

# File descriptors: 10,000 idle clients need as many on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
WORKER_CONNS=$((NOFILE < 20000 ? NOFILE : 20000))
if ((IDLE_CONNS + 200 > NOFILE)); then
    say "bench: open-file limit is $NOFILE (hard $(ulimit -Hn)); idle scenario uses $((NOFILE - 200)) connections"
    IDLE_CONNS=$((NOFILE - 200))
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gh-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as another user
NGINX_USER=""
[[ $(id -u) -eq 0 ]] && NGINX_USER="user root root;"

# ------------------------------------------------------------ processes
PIDS=()   # every long-running process we started, stopped by cleanup()
LAST_PID=

# start LOG CMD...: runs CMD in the background, records its pid in LAST_PID.
start() {
    local log=$1
    shift
    "$@" </dev/null >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

forget() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# stop PID: SIGTERM, up to 3 s to exit (nginx's master waits for its
# workers), then SIGKILL to it and to the children it had.
stop() {
    local pid=$1 kids i
    forget "$pid"
    if kill -0 "$pid" 2>/dev/null; then
        kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            # shellcheck disable=SC2086
            kill -KILL "$pid" $kids 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]}"; done
    if [[ -n ${BENCH_KEEP_TMP:-} ]]; then
        say "bench: kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT TERM

# run_bounded SECONDS OUT CMD...: a foreground step that Ctrl-C can stop at
# once (bash runs traps only between commands, so we wait on a background
# job) and that never outlives SECONDS. Returns CMD's status.
run_bounded() {
    local secs=$1 out=$2 pid rc=0
    shift 2
    timeout -k 2 "$secs" "$@" </dev/null >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

# render TEMPLATE OUT KEY=VALUE...: fill @KEY@ placeholders.
render() {
    local tpl=$1 out=$2 kv
    shift 2
    local args=(-e "s|@USER@|$NGINX_USER|g" -e "s|@TMP@|$TMP|g"
        -e "s|@NOFILE@|$NOFILE|g" -e "s|@WORKER_CONNS@|$WORKER_CONNS|g")
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$tpl" >"$out"
    ! grep -n '^[^#]*@[A-Z_][A-Z_]*@' "$out" || die "unfilled placeholder in $out"
}

# wait_ready PID PORT SECONDS [SCHEME]: GET /1k answers 200 with 1024 bytes.
wait_ready() {
    local pid=$1 port=$2 end=$((SECONDS + $3)) out scheme=${4:-$SCHEME}
    while ((SECONDS <= end)); do
        kill -0 "$pid" 2>/dev/null || return 1
        out=$(curl -sk -o /dev/null --max-time 1 -w '%{http_code} %{size_download}' \
            "$scheme://127.0.0.1:$port/1k" || true)
        [[ $out == "200 1024" ]] && return 0
        sleep 0.1
    done
    return 1
}

tail_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] && { say "  --- $f"; tail -n 8 "$f" | sed 's/^/  /'; }
    done
    return 0
}

# ------------------------------------------------------------ peers
declare -A PEER_PID=() PEER_PORT=()
ORIGIN_PID=
ORIGIN_PORT=
PEERS=()          # peers that came up, in interleaving order
GH_NOTE=""

start_origin() {
    mkdir -p "$TMP/www" "$TMP/origin-tmp"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/1k"
    chmod -R a+rX "$TMP/www"
    ORIGIN_PORT=$($PY "$LIB/benchlib.py" ports 1)
    render "$BENCH/conf/origin.nginx.conf" "$TMP/origin.conf" "PORT=$ORIGIN_PORT"
    start "$TMP/origin.out" taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP" \
        -e "$TMP/origin-error.log" -c "$TMP/origin.conf" -g 'daemon off;'
    ORIGIN_PID=$LAST_PID
    wait_ready "$ORIGIN_PID" "$ORIGIN_PORT" 10 http || {
        tail_logs "$TMP/origin.out" "$TMP/origin-error.log"
        die "origin nginx did not come up"
    }
}

# start_peer NAME PORT: 0 when it serves GET /1k through the origin.
start_peer() {
    local name=$1 port=$2 pin=(taskset -c "$PROXY_CPU")
    case $name in
    gatehouse | gatehouse-open | gatehouse-hardened)
        if [[ ! -x $GH_BIN ]]; then
            GH_NOTE="gatehouse skipped: $GH_BIN not built yet (make BUILD=release)"
            say "bench: $GH_NOTE"
            return 1
        fi
        render "$BENCH/conf/$name$CONF_SUFFIX.yaml" "$TMP/$name.yaml" \
            "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT"
        start "$TMP/$name.out" "${pin[@]}" "$GH_BIN" -c "$TMP/$name.yaml"
        ;;
    nginx)
        mkdir -p "$TMP/nginx-tmp"
        render "$BENCH/conf/proxy$CONF_SUFFIX.nginx.conf" "$TMP/nginx.conf" \
            "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT"
        start "$TMP/nginx.out" "${pin[@]}" "$NGINX" -p "$TMP" \
            -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" -g 'daemon off;'
        ;;
    haproxy)
        render "$BENCH/conf/proxy$CONF_SUFFIX.haproxy.cfg" "$TMP/haproxy.cfg" \
            "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT"
        start "$TMP/haproxy.out" "${pin[@]}" "$HAPROXY" -f "$TMP/haproxy.cfg" -db
        ;;
    *) die "unknown peer $name" ;;
    esac
    PEER_PID[$name]=$LAST_PID
    PEER_PORT[$name]=$port
    if ! wait_ready "$LAST_PID" "$port" 10; then
        local why="did not answer GET /1k with 200 and 1024 bytes within 10 s"
        kill -0 "$LAST_PID" 2>/dev/null || why="exited at start"
        stop "$LAST_PID"
        if [[ $name == gatehouse* ]]; then
            GH_NOTE="$name skipped: $why"
            say "bench: $GH_NOTE"
            tail_logs "$TMP/$name.out" "$TMP/gh-error.log"
            return 1
        fi
        tail_logs "$TMP/$name.out" "$TMP/$name-error.log"
        die "$name $why"
    fi
    return 0
}

start_all() {
    local ports p i=0
    GH_NOTE=""
    PEERS=()
    start_origin
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports "${#WANT_PEERS[@]}")"
    for p in "${WANT_PEERS[@]}"; do
        if start_peer "$p" "${ports[i]}"; then PEERS+=("$p"); fi
        i=$((i + 1))
    done
    [[ ${#PEERS[@]} -gt 0 ]] || die "no peer came up"
    say "bench: origin nginx :$ORIGIN_PORT on cpu $LOAD_CPU; proxies on cpu $PROXY_CPU:$(
        for p in "${PEERS[@]}"; do printf ' %s :%s (pid %s)' "$p" "${PEER_PORT[$p]}" "${PEER_PID[$p]}"; done)"
}

stop_all() {
    local p
    for p in "${PEERS[@]}"; do stop "${PEER_PID[$p]}"; done
    stop "$ORIGIN_PID"
    PEERS=()
}

# report_death NAME: a peer exited on its own; say how, keep its logs in
# bench/results/tmp/ (ignored by git) and show their tails.
declare -A DIED=()
report_death() {
    local p=$1 rc=0 how keep
    wait "${PEER_PID[$p]}" 2>/dev/null || rc=$?
    forget "${PEER_PID[$p]}"
    how="exit status $rc"
    ((rc > 128)) && how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"
    DIED[$p]=$how
    keep=$RESULTS/tmp/$p-died-$(date +%H%M%S)
    mkdir -p "$keep"
    cp "$TMP/$p".* "$TMP"/*"$p"*.log "$keep/" 2>/dev/null || true
    [[ $p != gatehouse* ]] || cp "$TMP/gh-error.log" "$keep/" 2>/dev/null || true
    say "  $p died: $how; logs kept in ${keep#"$ROOT"/}"
    tail_logs "$TMP/$p.out" "$TMP/$p-error.log" "$TMP/gh-error.log"
    [[ $p == gatehouse* ]] && GH_NOTE="$p died during the run: $how"
    return 0
}

# The processes whose CPU and memory count for a peer: nginx's workers (the
# master only supervises), the single process otherwise (all its threads).
measured_pids() {
    if [[ $1 == nginx || $1 == varnish ]]; then # the workers / the cache child
        ps -o pid= --ppid "${PEER_PID[$1]}" | tr -d ' '
    else
        echo "${PEER_PID[$1]}"
    fi
}

# cpu_ticks PID...: utime + stime (fields 14 and 15 of /proc/PID/stat, clock
# ticks, all threads of the process), summed.
cpu_ticks() {
    local t=0 p s f
    for p in "$@"; do
        s=$(<"/proc/$p/stat")
        s=${s##*) } # fields from 3 on; comm may hold spaces
        read -ra f <<<"$s"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}

# core_ticks: "busy steal load_busy" from /proc/stat: busy and steal ticks of
# the proxy core, busy ticks of the load core; busy is every field but idle
# and iowait (guest time is already inside user).
core_ticks() {
    local user nice sys irq sirq steal load
    read -r _ user nice sys _ _ irq sirq load _ < <(grep "^cpu$LOAD_CPU " /proc/stat)
    load=$((user + nice + sys + irq + sirq + load))
    read -r _ user nice sys _ _ irq sirq steal _ < <(grep "^cpu$PROXY_CPU " /proc/stat)
    echo "$((user + nice + sys + irq + sirq + steal)) $steal $load"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# quiet_wait: before a timed run, wait (at most QUIET_WAIT seconds) until
# both cores are at least 90% idle over one second, so a burst from another
# tenant (a test run, a compile) passes first. Prints the seconds waited.
quiet_wait() {
    local start=$SECONDS a b busy_max
    while ((SECONDS - start < QUIET_WAIT)); do
        a=$(grep -E "^cpu($PROXY_CPU|$LOAD_CPU) " /proc/stat)
        sleep 1
        b=$(grep -E "^cpu($PROXY_CPU|$LOAD_CPU) " /proc/stat)
        busy_max=$(printf '%s\n%s\n' "$a" "$b" | awk '{
            busy = $2 + $3 + $4 + $7 + $8 + $9; tot = busy + $5 + $6
            if ($1 in b0) { d = tot - t0[$1]; p = d > 0 ? 100 * (busy - b0[$1]) / d : 0; if (p > m) m = p }
            else { b0[$1] = busy; t0[$1] = tot } } END { printf "%d", m }')
        ((busy_max < 10)) && break
    done
    echo $((SECONDS - start))
}

# ------------------------------------------------------------ reverse
scenario_reverse() {
    local scen=${SCEN:-reverse}
    local raw=$TMP/$scen.tsv r p url pids c0 c1 b0 b1 s0 s1 w rc status
    local req secs rps p50 p99 n2 se waited l0 l1
    local la_start
    say ""
    say "== $scen: wrk -t1 -c$CONNS -d${DURATION}s on cpu $LOAD_CPU -> proxy on cpu $PROXY_CPU -> origin nginx (1 KiB); $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    start_all
    printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for ((r = 1; r <= ROUNDS; r++)); do
        for p in "${PEERS[@]}"; do
            url="http://127.0.0.1:${PEER_PORT[$p]}/1k"
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                say "  round $r/$ROUNDS $p: process gone, skipped"
                [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                continue
            fi
            waited=$(quiet_wait)
            run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" "$url" || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            read -r b0 s0 l0 <<<"$(core_ticks)"
            rc=0
            run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" \
                --latency "$url" || rc=$?
            read -r b1 s1 l1 <<<"$(core_ticks)"
            c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            status=ok
            if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/wrk-$p-$r.txt" 2>"$TMP/parse.err"); then
                status="wrk-failed"
                w=$'0\t0\t0\t0\t0\t0\t0'
                tail_logs "$TMP/wrk-$p-$r.txt" "$TMP/parse.err"
            fi
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                status="died"
                report_death "$p"
            fi
            read -r req secs rps p50 p99 n2 se <<<"$w"
            printf '%s\t' "$r" "$p" "$req" "$secs" "$rps" "$p50" "$p99" \
                $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) $((l1 - l0)) "$n2" "$se" "$(loadavg)" "$waited" >>"$raw"
            printf '%s\n' "$status" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '{
                us = $3 > 0 ? $8 / hz / $3 * 1e6 : 0; core = $3 > 0 ? $9 / hz / $3 * 1e6 : 0
                printf "  round %s/%s %-9s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6.2f µs/req (core %6.2f)  non-2xx %s  errors %s  waited %ss  %s\n",
                    $1, R, $2, $5, $6 / 1e3, $7 / 1e3, us, core, $12, $13, $15, $16 }'
        done
    done
    stop_all
    local notes=(--note "$ROUNDS interleaved rounds; each: ${WARMUP} s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:<port>/1k\`"
        --note "proxy pinned to cpu $PROXY_CPU; origin (nginx, 1 worker, 1 KiB file) and wrk pinned to cpu $LOAD_CPU"
        --note "before each run, up to ${QUIET_WAIT} s of waiting for both cores to be 90% idle (column 'quiet wait s')"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report "$scen" "$raw" "$RESULTS/$scen-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

# ------------------------------------------------------------ hardening
# What the defences cost: the reverse scenario with two gatehouses only,
# one with everything on (sandbox, a listener rate limit per address and a
# route rate limit, both too generous to refuse, connections_per_address)
# and one with everything off (conf/gatehouse-*.yaml).
scenario_hardening() {
    local saved=("${WANT_PEERS[@]}")
    WANT_PEERS=(gatehouse-hardened gatehouse-open)
    SCEN=hardening scenario_reverse
    WANT_PEERS=("${saved[@]}")
}

# ------------------------------------------------------------ idle
scenario_idle() {
    local raw=$TMP/idle.tsv r p port pids left rc json deadline=$((SECONDS + IDLE_BUDGET))
    local skip=" "
    say ""
    say "== idle: $IDLE_CONNS keep-alive connections, one GET each, then idle; RSS before/after; $IDLE_ROUNDS rounds, a fresh proxy each (budget ${IDLE_BUDGET} s)"
    GH_NOTE=""
    start_origin
    printf 'round\tpeer\twanted\talive\trss_before_kb\trss_after_kb\telapsed_s\tstatus\n' >"$raw"
    for ((r = 1; r <= IDLE_ROUNDS; r++)); do
        for p in "${WANT_PEERS[@]}"; do
            [[ $skip == *" $p "* ]] && continue
            left=$((deadline - SECONDS))
            if ((left < 15)); then
                say "  round $r/$IDLE_ROUNDS $p: skipped, the scenario's ${IDLE_BUDGET} s budget is spent"
                printf '%s\t%s\t%s\t0\t0\t0\t0\tout of time\n' "$r" "$p" "$IDLE_CONNS" >>"$raw"
                continue
            fi
            port=$($PY "$LIB/benchlib.py" ports 1)
            if ! start_peer "$p" "$port"; then
                skip+="$p "
                continue
            fi
            pids=$(measured_pids "$p" | paste -sd, -)
            rc=0
            run_bounded $((left - 5)) "$TMP/idle-$p-$r.json" \
                taskset -c "$LOAD_CPU" "$PY" "$LIB/idle_client.py" \
                --port "$port" --conns "$IDLE_CONNS" --pids "$pids" \
                --timeout $((left - 10)) || rc=$?
            json=$(tail -n 1 "$TMP/idle-$p-$r.json")
            if ! $PY -c '
import json, sys
d = json.loads(sys.argv[1]); rc = int(sys.argv[4])
st = "ok" if rc == 0 else ("timeout" if d["timed_out"] else "not all idle")
if d["errors"]: st += " " + "; ".join("%s x%d" % kv for kv in d["errors"].items())
print("\t".join(str(x) for x in (sys.argv[2], sys.argv[3], d["wanted"], d["alive"],
      d["rss_before_kb"], d["rss_after_kb"], d["setup_s"], st)))
' "$json" "$r" "$p" "$rc" >>"$raw" 2>/dev/null; then
                printf '%s\t%s\t%s\t0\t0\t0\t0\tclient failed (rc %s)\n' "$r" "$p" "$IDLE_CONNS" "$rc" >>"$raw"
                tail_logs "$TMP/idle-$p-$r.json"
            fi
            kill -0 "${PEER_PID[$p]}" 2>/dev/null || say "  $p: process died"
            stop "${PEER_PID[$p]}"
            tail -n 1 "$raw" | awk -F'\t' -v R="$IDLE_ROUNDS" '{
                printf "  round %s/%s %-9s %s/%s idle  RSS %s -> %s KiB  %s bytes/conn  (%s s)  %s\n",
                    $1, R, $2, $4, $3, $5, $6, ($4 > 0 ? sprintf("%.0f", ($6 - $5) * 1024 / $4) : "n/a"), $7, $8 }'
        done
    done
    stop "$ORIGIN_PID"
    local notes=(--note "client: bench/lib/idle_client.py on cpu $LOAD_CPU; at most 10 connections connecting or in a request at once; a warm-up of 20 requests on connections then closed, RSS read after it and again 2 s after the last response"
        --note "$IDLE_ROUNDS interleaved rounds, a freshly started proxy (pinned to cpu $PROXY_CPU) for each measurement; the summary is the median"
        --note "open-file limit $NOFILE; budget ${IDLE_BUDGET} s for the whole scenario"
        --note "nginx allocates its connection table (worker_connections 20000 x ~430 bytes) at start, so it is in 'before'; see bench/README.md")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report idle "$raw" "$RESULTS/idle-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

# ------------------------------------------------------------ load
# Latency against offered load: wrk with more and more connections (a
# closed loop: each connection sends its next request when the last
# answer came, so the offered load grows with the connections until the
# proxy or the load core saturates). Debian has wrk, not wrk2, so there is
# no fixed-rate (open loop) mode; see bench/README.md.
scenario_load() {
    local raw=$TMP/load.tsv c p url pids c0 c1 rc status w req secs rps p50 p99 n2 se
    local la_start
    read -ra levels <<<"$LOAD_LEVELS"
    say ""
    say "== load: wrk -t1 -c{${levels[*]}} -d${LOAD_DURATION}s per peer -> latency against req/s"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    start_all
    printf 'conns\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tnon2xx\tsockerr\tloadavg\tstatus\n' >"$raw"
    for c in "${levels[@]}"; do
        for p in "${PEERS[@]}"; do
            url="http://127.0.0.1:${PEER_PORT[$p]}/1k"
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t%s\tdied\n' "$c" "$p" "$(loadavg)" >>"$raw"
                continue
            fi
            quiet_wait >/dev/null
            run_bounded 20 "$TMP/lwarm-$p-$c.txt" taskset -c "$LOAD_CPU" "$WRK" -t1 \
                -c"$c" -d1s "$url" || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            rc=0
            run_bounded $((LOAD_DURATION + 20)) "$TMP/load-$p-$c.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$c" -d"${LOAD_DURATION}s" \
                --latency "$url" || rc=$?
            c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            status=ok
            if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/load-$p-$c.txt" 2>"$TMP/parse.err"); then
                status="wrk-failed"
                w=$'0\t0\t0\t0\t0\t0\t0'
            fi
            kill -0 "${PEER_PID[$p]}" 2>/dev/null || { status=died; report_death "$p"; }
            read -r req secs rps p50 p99 n2 se <<<"$w"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$p" "$req" "$secs" \
                "$rps" "$p50" "$p99" $((c1 - c0)) "$n2" "$se" "$(loadavg)" "$status" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" '{
                printf "  %4s conns %-9s %9.0f req/s  p50 %8.3f ms  p99 %8.3f ms  %6.2f µs/req  %s\n",
                    $1, $2, $5, $6 / 1e3, $7 / 1e3, ($3 > 0 ? $8 / hz / $3 * 1e6 : 0), $12 }'
        done
    done
    stop_all
    local notes=(--note "connections ${levels[*]}; per level and peer: a 1 s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c<N> -d${LOAD_DURATION}s --latency http://127.0.0.1:<port>/1k\`"
        --note "proxy pinned to cpu $PROXY_CPU; origin and wrk on cpu $LOAD_CPU; peers interleaved at each level"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report load "$raw" "$RESULTS/load-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

# ------------------------------------------------------------ tls
# One timed load run of KIND (handshake | keepalive | h2) against URL, its
# output in OUT; prints the TSV fields requests seconds rps p50 p99 non2xx
# sockerr (benchlib parses wrk and h2load alike).
tls_load() {
    local kind=$1 url=$2 secs=$3 out=$4 rc=0 parser=wrk
    local load=(taskset -c "$LOAD_CPU")
    case $kind in
    handshake) load+=("$WRK" -t1 -c"$CONNS" -d"${secs}s" --latency -H "Connection: close" "$url") ;;
    keepalive) load+=("$WRK" -t1 -c"$CONNS" -d"${secs}s" --latency "$url") ;;
    h2) load+=("$H2LOAD" -t1 -c1 -m100 -D "$secs" "$url"); parser=h2load ;;
    esac
    run_bounded $((secs + 20)) "$out" "${load[@]}" || rc=$?
    [[ $rc -eq 0 ]] || return 1
    $PY "$LIB/benchlib.py" "$parser" "$out"
}

# measure_rounds KIND RAW: interleaved rounds of KIND over the peers, as in
# the reverse scenario, into RAW (the same TSV columns).
measure_rounds() {
    local kind=$1 raw=$2 r p url pids c0 c1 b0 b1 s0 s1 l0 l1 w status waited
    printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for ((r = 1; r <= ROUNDS; r++)); do
        for p in "${PEERS[@]}"; do
            url="https://127.0.0.1:${PEER_PORT[$p]}/1k"
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                continue
            fi
            waited=$(quiet_wait)
            tls_load "$kind" "$url" "$WARMUP" "$TMP/warmup-$kind-$p-$r.txt" >/dev/null 2>&1 || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            read -r b0 s0 l0 <<<"$(core_ticks)"
            status=ok
            if ! w=$(tls_load "$kind" "$url" "$DURATION" "$TMP/$kind-$p-$r.txt" 2>"$TMP/parse.err"); then
                status="load-failed"
                w=$'0\t0\t0\t0\t0\t0\t0'
                tail_logs "$TMP/$kind-$p-$r.txt" "$TMP/parse.err"
            fi
            read -r b1 s1 l1 <<<"$(core_ticks)"
            c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                status="died"
                report_death "$p"
            fi
            printf '%s\t' "$r" "$p" $w $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) $((l1 - l0)) | \
                awk -F'\t' -v OFS='\t' '{ print $1, $2, $3, $4, $5, $6, $7, $10, $11, $12, $13, $8, $9 }' | tr -d '\n' >>"$raw"
            printf '\t%s\t%s\t%s\n' "$(loadavg)" "$waited" "$status" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" -v K="$kind" '{
                us = $3 > 0 ? $8 / hz / $3 * 1e6 : 0; core = $3 > 0 ? $9 / hz / $3 * 1e6 : 0
                printf "  %-9s round %s/%s %-9s %9.0f req/s  %7.2f µs/req (core %7.2f)  non-2xx %s  errors %s  waited %ss  %s\n",
                    K, $1, R, $2, $5, us, core, $12, $13, $15, $16 }'
        done
    done
}

scenario_tls() {
    local la_start kind raw
    say ""
    say "== tls: new TLS handshakes (wrk, Connection: close), HTTPS keep-alive (wrk), h2load -c1 -m100; $ROUNDS rounds each"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    "$ROOT/scripts/test-ca.sh" init "$TMP/ca" >/dev/null || die "scripts/test-ca.sh failed"
    cat "$TMP/ca/localhost.pem" "$TMP/ca/localhost.key" >"$TMP/ca/haproxy.pem"
    chmod -R a+rX "$TMP/ca"
    command -v "$H2LOAD" >/dev/null || die "h2load not found; run scripts/deps.sh bench"
    CONF_SUFFIX=-tls
    SCHEME=https
    start_all
    for kind in handshake keepalive h2; do
        raw=$TMP/tls-$kind.tsv
        measure_rounds "$kind" "$raw"
        local what
        case $kind in
        handshake) what="\`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency -H 'Connection: close' https://127.0.0.1:<port>/1k\`: every request a new connection and a full TLS 1.3 handshake (ECDSA P-256 certificate, X25519; resumption off on every peer), so µs/req is µs per handshake plus one request" ;;
        keepalive) what="\`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency https://127.0.0.1:<port>/1k\`: HTTPS/1.1 keep-alive" ;;
        h2) what="\`taskset -c $LOAD_CPU h2load -t1 -c1 -m100 -D $DURATION https://127.0.0.1:<port>/1k\`: one HTTP/2 connection, 100 concurrent streams (h2load gives no percentiles: p50 column = mean, p99 column = max)" ;;
        esac
        local notes=(--note "$ROUNDS interleaved rounds; each: ${WARMUP} s warm-up, then $what"
            --note "proxy pinned to cpu $PROXY_CPU; origin (nginx, 1 worker, 1 KiB file, plain HTTP/1.1) and the load generator pinned to cpu $LOAD_CPU"
            --note "the same certificate (scripts/test-ca.sh, ECDSA P-256, leaf + intermediate), TLS 1.2/1.3 with ECDHE AEAD ciphers, no session resumption, for every peer (bench/conf/*-tls.*)"
            --note "before each run, up to ${QUIET_WAIT} s of waiting for both cores to be 90% idle (column 'quiet wait s')"
            --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
        [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
        say ""
        $PY "$LIB/benchlib.py" report "tls-$kind" "$raw" "$RESULTS/tls-$kind-$DATE.md" \
            "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
    done
    stop_all
    CONF_SUFFIX=""
    SCHEME=http
}

# ------------------------------------------------------------ pools
# Three origin servers (one nginx worker on three ports) behind each proxy;
# gatehouse runs once per balancer. See bench/README.md "Scenario pools".
POOLS_PEERS=(gh-rr gh-lc gh-p2c gh-ewma nginx haproxy)
declare -A POOLS_BAL=([gh-rr]=round_robin [gh-lc]=least_conn [gh-p2c]=random_two [gh-ewma]=ewma)
O3_PORTS=()

pools_start_origin() {
    local p
    mkdir -p "$TMP/www" "$TMP/origin-tmp"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/1k"
    chmod -R a+rX "$TMP/www"
    read -ra O3_PORTS <<<"$($PY "$LIB/benchlib.py" ports 3)"
    render "$BENCH/conf/origin3.nginx.conf" "$TMP/origin3.conf" "PORT1=${O3_PORTS[0]}" \
        "PORT2=${O3_PORTS[1]}" "PORT3=${O3_PORTS[2]}"
    start "$TMP/origin3.out" taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP" \
        -e "$TMP/origin3-error.log" -c "$TMP/origin3.conf" -g 'daemon off;'
    ORIGIN_PID=$LAST_PID
    for p in "${O3_PORTS[@]}"; do
        wait_ready "$ORIGIN_PID" "$p" 10 || {
            tail_logs "$TMP/origin3.out" "$TMP/origin3-error.log"
            die "origin nginx (3 ports) did not come up"
        }
    done
}

# pools_start_peer NAME PORT: 0 when it serves GET /1k through the origins.
pools_start_peer() {
    local name=$1 port=$2 pin=(taskset -c "$PROXY_CPU") why
    local ports=("PORT=$port" "PORT1=${O3_PORTS[0]}" "PORT2=${O3_PORTS[1]}" "PORT3=${O3_PORTS[2]}")
    case $name in
    gh-*)
        if [[ ! -x $GH_BIN ]]; then
            GH_NOTE="gatehouse skipped: $GH_BIN not built yet (make BUILD=release)"
            say "bench: $GH_NOTE"
            return 1
        fi
        render "$BENCH/conf/pools.gatehouse.yaml" "$TMP/$name.yaml" "${ports[@]}" \
            "BALANCE=${POOLS_BAL[$name]}"
        start "$TMP/$name.out" "${pin[@]}" "$GH_BIN" -c "$TMP/$name.yaml"
        ;;
    nginx)
        mkdir -p "$TMP/nginx-tmp"
        render "$BENCH/conf/pools.nginx.conf" "$TMP/nginx.conf" "${ports[@]}"
        start "$TMP/nginx.out" "${pin[@]}" "$NGINX" -p "$TMP" \
            -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" -g 'daemon off;'
        ;;
    haproxy)
        render "$BENCH/conf/pools.haproxy.cfg" "$TMP/haproxy.cfg" "${ports[@]}"
        start "$TMP/haproxy.out" "${pin[@]}" "$HAPROXY" -f "$TMP/haproxy.cfg" -db
        ;;
    *) die "unknown peer $name" ;;
    esac
    PEER_PID[$name]=$LAST_PID
    PEER_PORT[$name]=$port
    if ! wait_ready "$LAST_PID" "$port" 10; then
        why="did not answer GET /1k with 200 and 1024 bytes within 10 s"
        kill -0 "$LAST_PID" 2>/dev/null || why="exited at start"
        stop "$LAST_PID"
        tail_logs "$TMP/$name.out" "$TMP/$name-error.log" "$TMP/gh-error.log"
        if [[ $name == gh-* ]]; then
            GH_NOTE="$name skipped: $why"
            say "bench: $GH_NOTE"
            return 1
        fi
        die "$name $why"
    fi
    return 0
}

scenario_pools() {
    local raw=$TMP/pools.tsv r p url pids c0 c1 b0 b1 s0 s1 rc status ports i=0
    local w req secs rps p50 p99 n2 se waited l0 l1 la_start
    say ""
    say "== pools: wrk -t1 -c$CONNS -d${DURATION}s on cpu $LOAD_CPU -> proxy on cpu $PROXY_CPU -> 3 origins (one nginx, 3 ports, 1 KiB); $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    GH_NOTE=""
    PEERS=()
    pools_start_origin
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports "${#POOLS_PEERS[@]}")"
    for p in "${POOLS_PEERS[@]}"; do
        if pools_start_peer "$p" "${ports[i]}"; then PEERS+=("$p"); fi
        i=$((i + 1))
    done
    say "bench: origins :${O3_PORTS[*]} on cpu $LOAD_CPU; proxies on cpu $PROXY_CPU:$(
        for p in "${PEERS[@]}"; do printf ' %s :%s' "$p" "${PEER_PORT[$p]}"; done)"
    printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for ((r = 1; r <= ROUNDS; r++)); do
        for p in "${PEERS[@]}"; do
            url="http://127.0.0.1:${PEER_PORT[$p]}/1k"
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                say "  round $r/$ROUNDS $p: process gone, skipped"
                [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                continue
            fi
            waited=$(quiet_wait)
            run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" "$url" || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            read -r b0 s0 l0 <<<"$(core_ticks)"
            rc=0
            run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" \
                --latency "$url" || rc=$?
            read -r b1 s1 l1 <<<"$(core_ticks)"
            c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            status=ok
            if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/wrk-$p-$r.txt" 2>"$TMP/parse.err"); then
                status="wrk-failed"
                w=$'0\t0\t0\t0\t0\t0\t0'
                tail_logs "$TMP/wrk-$p-$r.txt" "$TMP/parse.err"
            fi
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                status="died"
                report_death "$p"
            fi
            read -r req secs rps p50 p99 n2 se <<<"$w"
            printf '%s\t' "$r" "$p" "$req" "$secs" "$rps" "$p50" "$p99" \
                $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) $((l1 - l0)) "$n2" "$se" "$(loadavg)" "$waited" >>"$raw"
            printf '%s\n' "$status" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '{
                us = $3 > 0 ? $8 / hz / $3 * 1e6 : 0; core = $3 > 0 ? $9 / hz / $3 * 1e6 : 0
                printf "  round %s/%s %-9s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6.2f µs/req (core %6.2f)  non-2xx %s  errors %s  waited %ss  %s\n",
                    $1, R, $2, $5, $6 / 1e3, $7 / 1e3, us, core, $12, $13, $15, $16 }'
        done
    done
    stop_all
    # the balancers' own cost, without the network (bench/lib/pick_cost.c)
    local pick=()
    if make -s -C "$ROOT" BUILD=release build/release/libgatehouse.a >"$TMP/pick-build.txt" 2>&1 &&
        cc -std=c17 -D_GNU_SOURCE -O2 -I"$ROOT/src" "$LIB/pick_cost.c" \
            "$ROOT/build/release/libgatehouse.a" $(pkg-config --libs yaml-0.1 libcares) \
            -lm -pthread -o "$TMP/pick_cost" >>"$TMP/pick-build.txt" 2>&1; then
        quiet_wait >/dev/null
        run_bounded 120 "$TMP/pick.txt" taskset -c "$PROXY_CPU" "$TMP/pick_cost" 5000000 &&
            pick=(--pick "$TMP/pick.txt")
    else
        tail_logs "$TMP/pick-build.txt"
    fi
    local notes=(--note "$ROUNDS interleaved rounds; each: ${WARMUP} s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:<port>/1k\`"
        --note "proxies pinned to cpu $PROXY_CPU, one worker each; the three origins are one nginx worker listening on three ports, pinned with wrk to cpu $LOAD_CPU"
        --note "gatehouse runs once per balancer: gh-rr round_robin, gh-lc least_conn, gh-p2c random_two, gh-ewma ewma; nginx and HAProxy balance round robin"
        --note "before each run, up to ${QUIET_WAIT} s of waiting for both cores to be 90% idle (column 'quiet wait s')"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/pools_report.py" "$raw" "$RESULTS/pools-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${pick[@]}" "${notes[@]}"
}


# ------------------------------------------------------------ static
# Static files, gatehouse vs nginx, each serving $TMP/www itself (no origin):
# a 1 KiB and a 1 MiB file, interleaved rounds, the same figures as reverse
# (bench/README.md "Scenario static"). One results file per size.
scenario_static() {
    local size r p url pids c0 c1 b0 b1 s0 s1 l0 l1 w rc status waited raw port
    local req secs rps p50 p99 n2 se la_start ports
    declare -A SPID=() SPORT=()
    say ""
    say "== static: wrk -t1 -c$CONNS -d${DURATION}s on cpu $LOAD_CPU -> web server on cpu $PROXY_CPU (1 KiB and 1 MiB files); $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    mkdir -p "$TMP/www" "$TMP/nginx-tmp"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/1k"
    head -c 1048576 /dev/urandom >"$TMP/www/1m"
    chmod -R a+rX "$TMP/www"
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports 2)"
    GH_NOTE=""
    local speers=()
    for p in gatehouse nginx; do
        [[ " ${WANT_PEERS[*]} " == *" $p "* ]] || continue
        port=${ports[${#speers[@]}]}
        if [[ $p == gatehouse ]]; then
            if [[ ! -x $GH_BIN ]]; then
                GH_NOTE="gatehouse skipped: $GH_BIN not built yet (make BUILD=release)"
                say "bench: $GH_NOTE"
                continue
            fi
            render "$BENCH/conf/static.gatehouse.yaml" "$TMP/static-gh.yaml" "PORT=$port"
            start "$TMP/gatehouse.out" taskset -c "$PROXY_CPU" "$GH_BIN" -c "$TMP/static-gh.yaml"
        else
            render "$BENCH/conf/static.nginx.conf" "$TMP/static-nginx.conf" "PORT=$port"
            start "$TMP/nginx.out" taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP" \
                -e "$TMP/nginx-error.log" -c "$TMP/static-nginx.conf" -g 'daemon off;'
        fi
        SPID[$p]=$LAST_PID
        SPORT[$p]=$port
        if ! wait_ready "$LAST_PID" "$port" 10; then
            tail_logs "$TMP/$p.out" "$TMP/gh-error.log" "$TMP/nginx-error.log"
            stop "$LAST_PID"
            [[ $p == gatehouse ]] || die "nginx did not serve /1k"
            GH_NOTE="gatehouse skipped: did not serve GET /1k within 10 s"
            continue
        fi
        speers+=("$p")
        PEER_PID[$p]=$LAST_PID
    done
    [[ ${#speers[@]} -gt 0 ]] || die "no web server came up"
    for size in 1k 1m; do
        raw=$TMP/static-$size.tsv
        printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
        say "  -- /$size"
        for ((r = 1; r <= ROUNDS; r++)); do
            for p in "${speers[@]}"; do
                url="http://127.0.0.1:${SPORT[$p]}/$size"
                if ! kill -0 "${SPID[$p]}" 2>/dev/null; then
                    say "  round $r/$ROUNDS $p: process gone, skipped"
                    printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                    continue
                fi
                waited=$(quiet_wait)
                run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$size-$r.txt" \
                    taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" "$url" || true
                read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
                c0=$(cpu_ticks "${pids[@]}")
                read -r b0 s0 l0 <<<"$(core_ticks)"
                rc=0
                run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$size-$r.txt" \
                    taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" \
                    --latency "$url" || rc=$?
                read -r b1 s1 l1 <<<"$(core_ticks)"
                c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
                status=ok
                if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/wrk-$p-$size-$r.txt" 2>"$TMP/parse.err"); then
                    status="wrk-failed"
                    w=$'0\t0\t0\t0\t0\t0\t0'
                    tail_logs "$TMP/wrk-$p-$size-$r.txt" "$TMP/parse.err"
                fi
                kill -0 "${SPID[$p]}" 2>/dev/null || status="died"
                read -r req secs rps p50 p99 n2 se <<<"$w"
                printf '%s\t' "$r" "$p" "$req" "$secs" "$rps" "$p50" "$p99" \
                    $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) $((l1 - l0)) "$n2" "$se" "$(loadavg)" "$waited" >>"$raw"
                printf '%s\n' "$status" >>"$raw"
                tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '{
                    us = $3 > 0 ? $8 / hz / $3 * 1e6 : 0; core = $3 > 0 ? $9 / hz / $3 * 1e6 : 0
                    printf "  round %s/%s %-9s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6.2f µs/req (core %6.2f)  non-2xx %s  errors %s  waited %ss  %s\n",
                        $1, R, $2, $5, $6 / 1e3, $7 / 1e3, us, core, $12, $13, $15, $16 }'
            done
        done
        local notes=(--note "$ROUNDS interleaved rounds; each: ${WARMUP} s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:<port>/$size\`"
            --note "web server pinned to cpu $PROXY_CPU, wrk to cpu $LOAD_CPU; both serve the same directory (bench/conf/static.*)"
            --note "nginx: sendfile on, tcp_nopush on, open_file_cache max=1000 valid 1s; gatehouse: static route defaults"
            --note "before each run, up to ${QUIET_WAIT} s of waiting for both cores to be 90% idle (column 'quiet wait s')"
            --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
        [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
        say ""
        $PY "$LIB/benchlib.py" report "static-$size" "$raw" "$RESULTS/static-$size-$DATE.md" \
            "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
    done
    for p in "${speers[@]}"; do stop "${SPID[$p]}"; done
}

# the forward-proxy scenarios (forward, connect) and their peers
# shellcheck source=bench/lib/forward.sh
source "$LIB/forward.sh"
# shellcheck source=bench/cache.sh
source "$BENCH/cache.sh"
# shellcheck source=bench/lib/sticky.sh
source "$LIB/sticky.sh"

say "bench: temp dir $TMP; open-file limit $NOFILE"
for s in "${SCENARIOS[@]}"; do
    "scenario_$s"
done
say ""
$PY "$LIB/report.py" "$RESULTS" --gatehouse "$GH_BIN" --command "$REPRO" ||
    say "bench: REPORT.md not written (see above)"
