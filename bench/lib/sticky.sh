# The "sticky" scenario for bench/run.sh (sourced by it; uses its helpers
# and globals): what the stick table costs per request (issue 9).
#
#   wrk -t1 -c$CONNS on the load core, every request carrying
#   "Cookie: JSESSIONID=bench", through gatehouse (one worker, proxy core)
#   to three origins (one nginx, three ports, load core), once per setup:
#     gh-plain        round robin, no stickiness (the reference)
#     gh-learn        sticky: { learn: JSESSIONID }, the node's table only
#     gh-learn-redis  the same with cluster.redis: every request asks Redis
#                     (GETEX) before its pick; redis-server on the load core
#     gh-source       sticky: { by: source }, the node's table only
#   Interleaved rounds; per setup the median req/s, p50, p99 and proxy CPU
#   µs per request.
#
# Knobs: BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNS.

REDIS_SERVER=/usr/bin/redis-server
STICKY_PEERS=(gh-plain gh-learn gh-learn-redis gh-source)
declare -A STICKY_OPT=([gh-plain]="" [gh-learn]="sticky: { learn: JSESSIONID }"
    [gh-learn-redis]="sticky: { learn: JSESSIONID }" [gh-source]="sticky: { by: source }")

sticky_start_peer() {
    local name=$1 port=$2 cluster=""
    [[ $name == *-redis ]] && cluster="cluster: { redis: { address: 127.0.0.1:$STICKY_REDIS_PORT, timeout: 200ms } }"
    render "$BENCH/conf/sticky.gatehouse.yaml" "$TMP/$name.yaml" "PORT=$port" \
        "PORT1=${O3_PORTS[0]}" "PORT2=${O3_PORTS[1]}" "PORT3=${O3_PORTS[2]}" \
        "STICKY=${STICKY_OPT[$name]}" "CLUSTER=$cluster"
    start "$TMP/$name.out" taskset -c "$PROXY_CPU" "$GH_BIN" -c "$TMP/$name.yaml"
    PEER_PID[$name]=$LAST_PID
    PEER_PORT[$name]=$port
    wait_ready "$LAST_PID" "$port" 10 || {
        tail_logs "$TMP/$name.out" "$TMP/gh-error.log"
        die "$name did not come up"
    }
}

scenario_sticky() {
    local raw=$TMP/sticky.tsv r p i=0 ports url pids c0 c1 rc w waited la_start
    local req secs rps p50 p99 n2 se
    [[ -x $GH_BIN ]] || die "$GH_BIN not built (make BUILD=release)"
    [[ -x $REDIS_SERVER ]] || die "$REDIS_SERVER not found; run scripts/deps.sh test"
    say ""
    say "== sticky: wrk -t1 -c$CONNS -d${DURATION}s (Cookie: JSESSIONID=bench) -> gatehouse on cpu $PROXY_CPU -> 3 origins; $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    pools_start_origin
    STICKY_REDIS_PORT=$($PY "$LIB/benchlib.py" ports 1)
    start "$TMP/redis.out" taskset -c "$LOAD_CPU" "$REDIS_SERVER" --bind 127.0.0.1 \
        --port "$STICKY_REDIS_PORT" --save "" --appendonly no --dir "$TMP"
    STICKY_REDIS_PID=$LAST_PID
    for ((i = 0; i < 50; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$STICKY_REDIS_PORT") 2>/dev/null && break
        sleep 0.1
    done
    i=0
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports "${#STICKY_PEERS[@]}")"
    PEERS=()
    for p in "${STICKY_PEERS[@]}"; do
        sticky_start_peer "$p" "${ports[i]}"
        PEERS+=("$p")
        i=$((i + 1))
    done
    printf 'round\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\n' >"$raw"
    for ((r = 1; r <= ROUNDS; r++)); do
        for p in "${PEERS[@]}"; do
            url="http://127.0.0.1:${PEER_PORT[$p]}/1k"
            waited=$(quiet_wait)
            run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" \
                -H "Cookie: JSESSIONID=bench" "$url" || true
            read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
            c0=$(cpu_ticks "${pids[@]}")
            rc=0
            run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$r.txt" \
                taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" --latency \
                -H "Cookie: JSESSIONID=bench" "$url" || rc=$?
            c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
            if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/wrk-$p-$r.txt" 2>"$TMP/parse.err"); then
                tail_logs "$TMP/wrk-$p-$r.txt" "$TMP/parse.err"
                w=$'0\t0\t0\t0\t0\t0\t0'
            fi
            read -r req secs rps p50 p99 n2 se <<<"$w"
            printf '%s\t' "$r" "$p" "$req" "$secs" "$rps" "$p50" "$p99" $((c1 - c0)) "$n2" "$se" "$(loadavg)" >>"$raw"
            printf '%s\n' "$waited" >>"$raw"
            tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '{
                us = $3 > 0 ? $8 / hz / $3 * 1e6 : 0
                printf "  round %s/%s %-15s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6.2f µs/req  non-2xx %s  errors %s  load %s\n",
                    $1, R, $2, $5, $6 / 1e3, $7 / 1e3, us, $9, $10, $11 }'
        done
    done
    stop_all
    stop "$STICKY_REDIS_PID"
    $PY - "$raw" "$RESULTS/sticky-$DATE.md" "$REPRO" "$la_start" "$(getconf CLK_TCK)" <<'PYEOF'
import statistics, sys
raw, out, repro, la, hz = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = [l.rstrip("\n").split("\t") for l in open(raw)][1:]
peers = []
for r in rows:
    if r[1] not in peers:
        peers.append(r[1])
def med(p, f):
    v = [f(r) for r in rows if r[1] == p and float(r[2]) > 0]
    return statistics.median(v) if v else 0.0
lines = ["# sticky", "", "## Run", "",
         "`%s`; load average at start %s, at end %s. Each setup: one gatehouse "
         "worker on the proxy core, wrk -t1 on the load core with every request "
         "carrying `Cookie: JSESSIONID=bench`, three origins (one nginx, three "
         "ports) and redis-server on the load core. Medians of %d interleaved "
         "rounds." % (repro, la, open("/proc/loadavg").read().split()[0],
                      len(rows) // max(len(peers), 1)), "",
         "## Result", "",
         "| setup | req/s | p50 ms | p99 ms | proxy CPU µs/req | non-2xx |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
for p in peers:
    lines.append("| %s | %.0f | %.3f | %.3f | %.2f | %d |" % (
        p, med(p, lambda r: float(r[4])), med(p, lambda r: float(r[5])) / 1e3,
        med(p, lambda r: float(r[6])) / 1e3,
        med(p, lambda r: float(r[7]) / hz / float(r[2]) * 1e6),
        sum(int(float(r[8])) for r in rows if r[1] == p)))
lines += ["", "## Raw", "", "```", open(raw).read().rstrip(), "```", ""]
open(out, "w").write("\n".join(lines))
print("wrote " + out)
PYEOF
}
