# Forward-proxy scenarios for bench/run.sh (sourced by it; uses its helpers
# and globals): gatehouse's forward listener against Squid and tinyproxy,
# one worker each, pinned to the proxy core like every peer.
#
#   forward   absolute-form GET of the origin's 1 KiB file through the proxy:
#             wrk (bench/lib/absolute.lua) on the load core, req/s and CPU
#             per request, interleaved rounds as in "reverse"
#   connect   CONNECT bulk throughput: BENCH_CONNECT_BYTES (1 GiB) sent
#             through a tunnel to a sink (bench/lib/tunnel_bulk.py), client
#             and sink on the load core; MB/s and proxy CPU seconds per GiB,
#             with a direct connection (no proxy) as the reference, and
#             two more: gatehouse with `splice: false` (gatehouse-copy) and
#             bench/lib/connect_relay.c, the least a CONNECT relay can do
#             (relay: read/write through 1 MiB; relay-splice: a 1 MiB pipe)
#
# Knobs: BENCH_FWD_PEERS="gatehouse squid tinyproxy",
# BENCH_CONNECT_BYTES=1073741824, BENCH_CONNECT_ROUNDS=3,
# BENCH_SINK_CPU (default: the load cpu).

SQUID=/usr/sbin/squid
TINYPROXY=/usr/bin/tinyproxy
read -ra FWD_PEERS <<<"${BENCH_FWD_PEERS:-gatehouse squid tinyproxy}"
CONNECT_BYTES=${BENCH_CONNECT_BYTES:-1073741824}
CONNECT_ROUNDS=${BENCH_CONNECT_ROUNDS:-3}
SINK_CPU=${BENCH_SINK_CPU:-$LOAD_CPU} # a third core, where there is one
SINK_PORT=
SINK_PID=
XSINK_PORT= # a second sink on the proxy's cpu: the cross-core reference
XSINK_PID=

fwd_check_tools() {
    local tool
    for tool in "$SQUID" "$TINYPROXY"; do
        command -v "$tool" >/dev/null || die "$tool not found; run scripts/deps.sh bench"
    done
}

# sink_on CPU NAME: starts a bulk sink pinned to CPU; sets LAST_PID and
# prints nothing; its port is in $TMP/NAME.port.
sink_on() {
    rm -f "$TMP/$2.port"
    start "$TMP/$2.out" taskset -c "$1" "$PY" "$LIB/tunnel_bulk.py" sink "$TMP/$2.port"
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $TMP/$2.port ]] && break
        sleep 0.1
    done
    [[ -s $TMP/$2.port ]] || die "bulk sink $2 did not start"
}

start_sink() {
    sink_on "$SINK_CPU" sink
    SINK_PID=$LAST_PID
    SINK_PORT=$(<"$TMP/sink.port")
    sink_on "$PROXY_CPU" xsink
    XSINK_PID=$LAST_PID
    XSINK_PORT=$(<"$TMP/xsink.port")
}

# fwd_ready PID PORT SECONDS: the proxy at PORT fetches the origin's /1k.
fwd_ready() {
    local pid=$1 port=$2 end=$((SECONDS + $3)) out
    while ((SECONDS <= end)); do
        kill -0 "$pid" 2>/dev/null || return 1
        out=$(curl -s -o /dev/null --max-time 1 -x "http://127.0.0.1:$port" \
            -w '%{http_code} %{size_download}' "http://127.0.0.1:$ORIGIN_PORT/1k" || true)
        [[ $out == "200 1024" ]] && return 0
        sleep 0.2
    done
    return 1
}

# fwd_start_peer NAME PORT: 0 when it proxies GET /1k to the origin.
fwd_start_peer() {
    local name=$1 port=$2 pin=(taskset -c "$PROXY_CPU")
    case $name in
    gatehouse)
        if [[ ! -x $GH_BIN ]]; then
            GH_NOTE="gatehouse skipped: $GH_BIN not built yet (make BUILD=release)"
            say "bench: $GH_NOTE"
            return 1
        fi
        render "$BENCH/conf/forward.gatehouse.yaml" "$TMP/fwd-gatehouse.yaml" \
            "PORT=$port" "SINK_PORT=$SINK_PORT"
        start "$TMP/gatehouse.out" "${pin[@]}" "$GH_BIN" -c "$TMP/fwd-gatehouse.yaml"
        ;;
    squid)
        mkdir -p "$TMP/squid"
        chmod 777 "$TMP/squid" # squid drops to its own user
        render "$BENCH/conf/squid.conf" "$TMP/squid.conf" \
            "PORT=$port" "SINK_PORT=$SINK_PORT"
        start "$TMP/squid.out" "${pin[@]}" "$SQUID" -N -f "$TMP/squid.conf"
        ;;
    tinyproxy)
        mkdir -p "$TMP/tinyproxy"
        chmod 777 "$TMP/tinyproxy"
        render "$BENCH/conf/tinyproxy.conf" "$TMP/tinyproxy.conf" \
            "PORT=$port" "SINK_PORT=$SINK_PORT"
        start "$TMP/tinyproxy.out" "${pin[@]}" "$TINYPROXY" -d -c "$TMP/tinyproxy.conf"
        ;;
    *) die "unknown forward peer $name" ;;
    esac
    PEER_PID[$name]=$LAST_PID
    PEER_PORT[$name]=$port
    if ! fwd_ready "$LAST_PID" "$port" 20; then
        local why="did not proxy GET /1k (200, 1024 bytes) within 20 s"
        kill -0 "$LAST_PID" 2>/dev/null || why="exited at start"
        stop "$LAST_PID"
        tail_logs "$TMP/$name.out" "$TMP/gh-error.log" "$TMP/squid/cache.log" \
            "$TMP/tinyproxy/tinyproxy.log"
        if [[ $name == gatehouse ]]; then
            GH_NOTE="gatehouse skipped: $why"
            say "bench: $GH_NOTE"
            return 1
        fi
        die "$name $why"
    fi
    return 0
}

fwd_start_all() {
    local ports p i=0
    GH_NOTE=""
    PEERS=()
    start_origin
    start_sink
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports "${#FWD_PEERS[@]}")"
    for p in "${FWD_PEERS[@]}"; do
        if fwd_start_peer "$p" "${ports[i]}"; then PEERS+=("$p"); fi
        i=$((i + 1))
    done
    [[ ${#PEERS[@]} -gt 0 ]] || die "no forward proxy came up"
    say "bench: origin nginx :$ORIGIN_PORT and sink :$SINK_PORT on cpu $LOAD_CPU; proxies on cpu $PROXY_CPU:$(
        for p in "${PEERS[@]}"; do printf ' %s :%s (pid %s)' "$p" "${PEER_PORT[$p]}" "${PEER_PID[$p]}"; done)"
}

fwd_stop_all() {
    local p
    for p in "${PEERS[@]}"; do stop "${PEER_PID[$p]}"; done
    stop "$SINK_PID"
    [[ -n $XSINK_PID ]] && stop "$XSINK_PID"
    stop "$ORIGIN_PID"
    PEERS=()
}

# ------------------------------------------------------------ forward
scenario_forward() {
    local raw=$TMP/forward.tsv r p pids c0 c1 b0 b1 s0 s1 l0 l1 w rc status
    local req secs rps p50 p99 n2 se waited la_start script
    fwd_check_tools
    say ""
    say "== forward: wrk -t1 -c$CONNS -d${DURATION}s on cpu $LOAD_CPU -> forward proxy on cpu $PROXY_CPU (absolute-form GET) -> origin nginx (1 KiB); $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    fwd_start_all
    script=$TMP/absolute.lua
    render "$LIB/absolute.lua" "$script" "ORIGIN_PORT=$ORIGIN_PORT"
    printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for ((r = 1; r <= ROUNDS; r++)); do
        for p in "${PEERS[@]}"; do
            local url="http://127.0.0.1:${PEER_PORT[$p]}/"
            if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                say "  round $r/$ROUNDS $p: process gone, skipped"
                [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                printf '%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                continue
            fi
            waited=$(quiet_wait)
            run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" -s "$script" "$url" || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            read -r b0 s0 l0 <<<"$(core_ticks)"
            rc=0
            run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" \
                --latency -s "$script" "$url" || rc=$?
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
    fwd_stop_all
    local notes=(--note "$ROUNDS interleaved rounds; each: ${WARMUP} s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency -s bench/lib/absolute.lua http://127.0.0.1:<proxy port>/\` (absolute-form \`GET http://127.0.0.1:<origin>/1k\`)"
        --note "proxy pinned to cpu $PROXY_CPU, one worker each (tinyproxy has no worker setting: one process, a thread per connection); origin (nginx, 1 worker, 1 KiB file) and wrk pinned to cpu $LOAD_CPU"
        --note "Squid ${SQUID_VERSION:-} with no cache (no cache_dir, cache deny all, cache_mem 0), access_log none; gatehouse with access log off; all add Via, gatehouse and Squid X-Forwarded-For"
        --note "before each run, up to ${QUIET_WAIT} s of waiting for both cores to be 90% idle (column 'quiet wait s')"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report forward "$raw" "$RESULTS/forward-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

# ------------------------------------------------------------ connect
# connect_start_extras: gatehouse-copy and the reference relays join PEERS
# (fwd_stop_all stops them with the others).
connect_start_extras() {
    local ports i name
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports 1)"
    if [[ " ${PEERS[*]} " == *" gatehouse "* ]]; then
        render "$BENCH/conf/forward.gatehouse.yaml" "$TMP/fwd-gatehouse-copy.yaml" \
            "PORT=${ports[0]}" "SINK_PORT=$SINK_PORT"
        sed -i 's/^\(      connect_ports: .*\)$/\1\n      splice: false/' "$TMP/fwd-gatehouse-copy.yaml"
        start "$TMP/gatehouse-copy.out" taskset -c "$PROXY_CPU" "$GH_BIN" -c "$TMP/fwd-gatehouse-copy.yaml"
        PEER_PID[gatehouse-copy]=$LAST_PID
        PEER_PORT[gatehouse-copy]=${ports[0]}
        if fwd_ready "$LAST_PID" "${ports[0]}" 20; then
            PEERS+=(gatehouse-copy)
        else
            stop "$LAST_PID"
            say "bench: gatehouse-copy did not come up; left out"
        fi
    fi
    if ! cc -std=c17 -O2 -Wall -o "$TMP/connect_relay" "$LIB/connect_relay.c" 2>"$TMP/relay-build.txt"; then
        tail_logs "$TMP/relay-build.txt"
        say "bench: bench/lib/connect_relay.c did not build; the relay rows are left out"
        return 0
    fi
    for name in relay relay-splice; do
        rm -f "$TMP/$name.port"
        start "$TMP/$name.out" taskset -c "$PROXY_CPU" "$TMP/connect_relay" "$TMP/$name.port" \
            "$([[ $name == relay-splice ]] && echo splice || echo copy)"
        for ((i = 0; i < 50; i++)); do
            [[ -s $TMP/$name.port ]] && break
            sleep 0.1
        done
        PEER_PID[$name]=$LAST_PID
        if [[ -s $TMP/$name.port ]]; then
            PEER_PORT[$name]=$(<"$TMP/$name.port")
            PEERS+=("$name")
        else
            stop "$LAST_PID"
            say "bench: $name did not start; left out"
        fi
    done
}

scenario_connect() {
    local raw=$TMP/connect.tsv r p pids c0 c1 b0 b1 s0 s1 l0 l1 rc status out
    local waited la_start nbytes secs mib=$((CONNECT_BYTES / 1048576))
    fwd_check_tools
    say ""
    say "== connect: $mib MiB through a CONNECT tunnel (client on cpu $LOAD_CPU, sink on cpu $SINK_CPU, proxy on cpu $PROXY_CPU), direct as reference; $CONNECT_ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    fwd_start_all
    connect_start_extras
    printf 'round\tpeer\tbytes\tseconds\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for ((r = 1; r <= CONNECT_ROUNDS; r++)); do
        for p in direct direct-xcore "${PEERS[@]}"; do
            local via=() sink=$SINK_PORT
            pids=()
            [[ $p == direct-xcore ]] && sink=$XSINK_PORT
            if [[ $p != direct* ]]; then
                if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                    [[ -n ${DIED[$p]:-} ]] || report_death "$p"
                    printf '%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t0\tdied\n' "$r" "$p" "$(loadavg)" >>"$raw"
                    continue
                fi
                via=("${PEER_PORT[$p]}")
                read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            fi
            waited=$(quiet_wait)
            # warm-up: 64 MiB, discarded
            run_bounded 60 "$TMP/bulk-warm-$p-$r.txt" taskset -c "$LOAD_CPU" \
                "$PY" "$LIB/tunnel_bulk.py" send "$sink" 67108864 "${via[@]}" || true
            c0=0
            [[ ${#pids[@]} -gt 0 ]] && c0=$(cpu_ticks "${pids[@]}")
            read -r b0 s0 l0 <<<"$(core_ticks)"
            rc=0
            run_bounded 600 "$TMP/bulk-$p-$r.txt" taskset -c "$LOAD_CPU" \
                "$PY" "$LIB/tunnel_bulk.py" send "$sink" "$CONNECT_BYTES" "${via[@]}" || rc=$?
            read -r b1 s1 l1 <<<"$(core_ticks)"
            c1=$c0
            [[ ${#pids[@]} -gt 0 ]] && c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            status=ok
            out=$(tail -n 1 "$TMP/bulk-$p-$r.txt")
            if [[ $rc -ne 0 || ! $out =~ ^[0-9]+\ [0-9.]+$ ]]; then
                status="failed"
                out="0 0"
                tail_logs "$TMP/bulk-$p-$r.txt"
            fi
            read -r nbytes secs <<<"$out"
            printf '%s\t' "$r" "$p" "$nbytes" "$secs" $((c1 - c0)) $((b1 - b0)) \
                $((s1 - s0)) $((l1 - l0)) "$(loadavg)" "$waited" >>"$raw"
            printf '%s\n' "$status" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$CONNECT_ROUNDS" '{
                mbs = $4 > 0 ? $3 / $4 / 1e6 : 0; gib = $3 / 1073741824
                cpu = gib > 0 ? $5 / hz / gib : 0
                printf "  round %s/%s %-9s %8.0f MB/s  %6.3f s  proxy CPU %5.2f s/GiB  waited %ss  %s\n",
                    $1, R, $2, mbs, $4, cpu, $10, $11 }'
        done
    done
    fwd_stop_all
    local notes=(--note "$CONNECT_ROUNDS interleaved rounds; each: a 64 MiB warm-up transfer, then \`taskset -c $LOAD_CPU bench/lib/tunnel_bulk.py send <sink port> $CONNECT_BYTES [<proxy port>]\` (CONNECT, send, half-close, wait for the sink's byte count)"
        --note "proxy pinned to cpu $PROXY_CPU, one worker each; the sink (bench/lib/tunnel_bulk.py sink) on cpu $SINK_CPU and the client on cpu $LOAD_CPU; 'direct' connects to the sink without a proxy"
        --note "'direct-xcore': the client on cpu $LOAD_CPU connects without a proxy to a second sink on cpu $PROXY_CPU. Through any proxy the bytes leave the client's core and come back to it in the sink, out of cache; direct keeps them on one core, hot. direct-xcore has the cross-core cost without a proxy, so 'x xcore' is what the proxy itself costs in throughput"
        --note "gatehouse-copy: gatehouse with \`splice: false\` (bulk directions read 1 MiB at a time). relay / relay-splice: bench/lib/connect_relay.c, one blocking tunnel, no event loop, no rules: read/write through a 1 MiB buffer, or splice through a 1 MiB pipe. They are what any relay costs on this machine; 'x relay' of a proxy is its throughput over theirs"
        --note "proxy CPU s/GiB: utime+stime of the proxy process over the timed transfer, per GiB"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report connect "$raw" "$RESULTS/connect-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}
