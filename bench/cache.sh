# Cache scenarios for bench/run.sh (sourced by it; uses its helpers: start,
# stop, render, run_bounded, quiet_wait, cpu_ticks, core_ticks, ...).
#
#   cache      hits of a 1 KiB and a 100 KiB object: gatehouse, Varnish,
#              nginx proxy_cache, HAProxy's cache; CPU µs per hit
#   cache_mem  memory per cached 1 KiB object (ΔRSS / objects)
#   evict      S3-FIFO vs LRU hit ratio on Zipf(0.9) at 10% of the keys
#
# See bench/README.md "Cache scenarios".

CACHE_ORIGIN_PID=
CACHE_ORIGIN_PORT=

start_cache_origin() {
    mkdir -p "$TMP/www" "$TMP/origin-tmp"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/1k"
    head -c 102400 /dev/zero | tr '\0' 'y' >"$TMP/www/100k"
    chmod -R a+rX "$TMP/www"
    CACHE_ORIGIN_PORT=$($PY "$LIB/benchlib.py" ports 1)
    render "$BENCH/conf/cache-origin.nginx.conf" "$TMP/cache-origin.conf" \
        "PORT=$CACHE_ORIGIN_PORT" "OBJ1K=$(head -c 1024 /dev/zero | tr '\0' 'o')"
    start "$TMP/cache-origin.out" taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP" \
        -e "$TMP/cache-origin-error.log" -c "$TMP/cache-origin.conf" -g 'daemon off;'
    CACHE_ORIGIN_PID=$LAST_PID
    wait_ready "$CACHE_ORIGIN_PID" "$CACHE_ORIGIN_PORT" 10 || {
        tail_logs "$TMP/cache-origin.out" "$TMP/cache-origin-error.log"
        die "cache origin nginx did not come up"
    }
}

# start_cache_peer NAME PORT: 0 when it serves GET /1k through the origin.
start_cache_peer() {
    local name=$1 port=$2 pin=(taskset -c "$PROXY_CPU") o=$CACHE_ORIGIN_PORT
    case $name in
    gatehouse)
        [[ -x $GH_BIN ]] || { GH_NOTE="gatehouse skipped: $GH_BIN not built"; return 1; }
        render "$BENCH/conf/cache.gatehouse.yaml" "$TMP/cache.gatehouse.yaml" \
            "PORT=$port" "ORIGIN_PORT=$o"
        start "$TMP/gatehouse.out" "${pin[@]}" "$GH_BIN" -c "$TMP/cache.gatehouse.yaml"
        ;;
    varnish)
        render "$BENCH/conf/cache.varnish.vcl" "$TMP/cache.varnish.vcl" "ORIGIN_PORT=$o"
        rm -rf "$TMP/varnish"
        start "$TMP/varnish.out" "${pin[@]}" "$VARNISHD" -F -a "127.0.0.1:$port" \
            -f "$TMP/cache.varnish.vcl" -n "$TMP/varnish" -s malloc,512m \
            -p thread_pools=1
        ;;
    nginx)
        mkdir -p "$TMP/nginx-cache-tmp"
        rm -rf "$TMP/nginx-cache"
        render "$BENCH/conf/cache.nginx.conf" "$TMP/cache.nginx.conf" \
            "PORT=$port" "ORIGIN_PORT=$o"
        start "$TMP/nginx.out" "${pin[@]}" "$NGINX" -p "$TMP" \
            -e "$TMP/nginx-cache-error.log" -c "$TMP/cache.nginx.conf" -g 'daemon off;'
        ;;
    haproxy)
        render "$BENCH/conf/cache.haproxy.cfg" "$TMP/cache.haproxy.cfg" \
            "PORT=$port" "ORIGIN_PORT=$o"
        start "$TMP/haproxy.out" "${pin[@]}" "$HAPROXY" -f "$TMP/cache.haproxy.cfg" -db
        ;;
    *) die "unknown cache peer $name" ;;
    esac
    PEER_PID[$name]=$LAST_PID
    PEER_PORT[$name]=$port
    if ! wait_ready "$LAST_PID" "$port" 20; then
        say "bench: $name did not come up"
        tail_logs "$TMP/$name.out" "$TMP/gh-error.log" "$TMP/nginx-cache-error.log"
        stop "$LAST_PID"
        [[ $name == gatehouse ]] && GH_NOTE="gatehouse did not come up"
        return 1
    fi
    # varnish forks its cache process after it answers: let it settle
    [[ $name == varnish ]] && sleep 0.5
    return 0
}

# One timed wrk run of PEER on URL; appends a row of the reverse format,
# with SIZE first, to RAW.
measure_hits() {
    local raw=$1 size=$2 r=$3 p=$4 url=$5 pids c0 c1 b0 b1 s0 s1 l0 l1 rc w status waited
    local req secs rps p50 p99 n2 se
    waited=$(quiet_wait)
    run_bounded $((WARMUP + 20)) "$TMP/warmup-$p-$size-$r.txt" \
        taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" "$url" || true
    read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
    c0=$(cpu_ticks "${pids[@]}")
    read -r b0 s0 l0 <<<"$(core_ticks)"
    rc=0
    run_bounded $((DURATION + 20)) "$TMP/wrk-$p-$size-$r.txt" \
        taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" || rc=$?
    read -r b1 s1 l1 <<<"$(core_ticks)"
    c1=$(cpu_ticks "${pids[@]}" 2>/dev/null || echo "$c0")
    status=ok
    if [[ $rc -ne 0 ]] || ! w=$($PY "$LIB/benchlib.py" wrk "$TMP/wrk-$p-$size-$r.txt" 2>"$TMP/parse.err"); then
        status="wrk-failed"
        w=$'0\t0\t0\t0\t0\t0\t0'
        tail_logs "$TMP/wrk-$p-$size-$r.txt" "$TMP/parse.err"
    fi
    kill -0 "${PEER_PID[$p]}" 2>/dev/null || status="died"
    read -r req secs rps p50 p99 n2 se <<<"$w"
    printf '%s\t' "$size" "$r" "$p" "$req" "$secs" "$rps" "$p50" "$p99" \
        $((c1 - c0)) $((b1 - b0)) $((s1 - s0)) $((l1 - l0)) "$n2" "$se" "$(loadavg)" "$waited" >>"$raw"
    printf '%s\n' "$status" >>"$raw"
    tail -n 1 "$raw" | awk -F'\t' -v hz="$(getconf CLK_TCK)" -v R="$ROUNDS" '{
        us = $4 > 0 ? $9 / hz / $4 * 1e6 : 0
        printf "  %-4s round %s/%s %-9s %9.0f req/s  p99 %7.3f ms  %6.2f µs/hit  non-2xx %s  errors %s  %s\n",
            $1, $2, R, $3, $6, $8 / 1e3, us, $13, $14, $17 }'
}

# True when a GET of URL is a hit, as the peer says: gatehouse's
# Cache-Status, nginx's X-Cache (added by its config), or an Age of 1 s or
# more (Varnish, HAProxy; the caller waits a second after priming).
is_hit() {
    local h
    h=$(curl -s -D - -o /dev/null --max-time 5 "$1" | tr -d '\r')
    grep -qiE '^(cache-status: [^;]+; hit|x-cache: hit|age: [1-9])' <<<"$h"
}

scenario_cache() {
    local raw=$TMP/cache.tsv r p size url ports i=0 la_start peers=() n0 n1
    say ""
    say "== cache: hits of /1k and /100k, wrk -t1 -c$CONNS -d${DURATION}s; peers on cpu $PROXY_CPU; $ROUNDS rounds"
    la_start=$(cut -d' ' -f1-3 /proc/loadavg)
    GH_NOTE=""
    start_cache_origin
    read -ra ports <<<"$($PY "$LIB/benchlib.py" ports "${#CACHE_PEERS[@]}")"
    for p in "${CACHE_PEERS[@]}"; do
        if start_cache_peer "$p" "${ports[i]}"; then peers+=("$p"); fi
        i=$((i + 1))
    done
    [[ ${#peers[@]} -gt 0 ]] || die "no cache peer came up"
    # prime every object on every peer, and check the next GET is a hit
    for p in "${peers[@]}"; do
        for size in 1k 100k; do
            url="http://127.0.0.1:${PEER_PORT[$p]}/$size"
            curl -s -o /dev/null "$url"
            sleep 1.1
            curl -s -o /dev/null "$url"
            is_hit "$url" || say "  warning: $p does not report a hit for /$size"
        done
    done
    printf 'size\tround\tpeer\trequests\tseconds\trps\tp50_us\tp99_us\tcpu_ticks\tcore_busy_ticks\tcore_steal_ticks\tload_busy_ticks\tnon2xx\tsockerr\tloadavg\tquiet_wait_s\tstatus\n' >"$raw"
    for size in 1k 100k; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for p in "${peers[@]}"; do
                if ! kill -0 "${PEER_PID[$p]}" 2>/dev/null; then
                    say "  $p: process gone, skipped"
                    continue
                fi
                measure_hits "$raw" "$size" "$r" "$p" "http://127.0.0.1:${PEER_PORT[$p]}/$size"
            done
        done
    done
    # the origin saw only the priming misses: everything timed was a hit
    for p in "${peers[@]}"; do stop "${PEER_PID[$p]}"; done
    stop "$CACHE_ORIGIN_PID"
    local notes=(--note "objects: /1k (1,024 bytes) and /100k (102,400 bytes), static files of one nginx origin worker with Cache-Control max-age=3600, primed into each cache before timing (two GETs, the second checked to be a hit)"
        --note "$ROUNDS interleaved rounds per size; each: ${WARMUP} s warm-up, then \`taskset -c $LOAD_CPU wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:<port>/<size>\`"
        --note "one worker each: gatehouse workers: 1; Varnish thread_pools=1 (its whole process pinned to cpu $PROXY_CPU, cache child measured); nginx worker_processes 1 (proxy_cache, files in the page cache); HAProxy nbthread 1 (cache section, 512 MB)"
        --note "load average at start: $la_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)")
    [[ -n $GH_NOTE ]] && notes+=(--note "$GH_NOTE")
    say ""
    $PY "$LIB/benchlib.py" report cache "$raw" "$RESULTS/cache-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

# Bytes HAProxy's cache holds for its objects: the sum of the blocks "show
# cache" lists (its shared memory is allocated whole at start, so RSS does
# not move).
haproxy_cache_bytes() {
    $PY - "$TMP/haproxy-cache.sock" <<'PYEOF'
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show cache\n")
d = b""
while True:
    x = s.recv(1 << 20)
    if not x:
        break
    d += x
print(sum(int(m) for m in re.findall(rb"\((\d+) blocks\)", d)) * 1024)
PYEOF
}

rss_kb() {
    local t=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

scenario_cache_mem() {
    local raw=$TMP/cache_mem.tsv p port pids before after lines0 lines1 fill check st
    local peers=(gatehouse varnish haproxy)
    say ""
    say "== cache_mem: $CACHE_OBJECTS distinct 1 KiB objects into each cache; ΔRSS per object"
    GH_NOTE=""
    start_cache_origin
    printf 'peer\tobjects\trss_before_kb\trss_after_kb\tstore_bytes\tfill_s\tcheck_requests\tcheck_misses\tstatus\n' >"$raw"
    for p in "${peers[@]}"; do
        port=$($PY "$LIB/benchlib.py" ports 1)
        start_cache_peer "$p" "$port" || continue
        # warm up pools and allocator caches, then measure
        run_bounded 60 "$TMP/mem-warm-$p.json" taskset -c "$LOAD_CPU" "$PY" \
            "$LIB/cache_fill.py" --port "$port" --count 200 --prefix /warm/ || true
        sleep 1
        read -ra pids <<<"$(measured_pids "$p" | tr '\n' ' ')"
        before=$(rss_kb "${pids[@]}")
        st=ok
        run_bounded 600 "$TMP/mem-fill-$p.json" taskset -c "$LOAD_CPU" "$PY" \
            "$LIB/cache_fill.py" --port "$port" --count "$CACHE_OBJECTS" || st="fill-failed"
        sleep 2
        after=$(rss_kb "${pids[@]}")
        fill=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["seconds"])' "$TMP/mem-fill-$p.json" 2>/dev/null || echo 0)
        lines0=$(wc -l <"$TMP/cache-origin-obj.log")
        run_bounded 120 "$TMP/mem-check-$p.json" taskset -c "$LOAD_CPU" "$PY" \
            "$LIB/cache_fill.py" --port "$port" --count "$CACHE_OBJECTS" --check 1000 || st="check-failed"
        sleep 0.5
        lines1=$(wc -l <"$TMP/cache-origin-obj.log")
        store=-
        [[ $p == haproxy ]] && store=$(haproxy_cache_bytes 2>/dev/null || echo -)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$CACHE_OBJECTS" "$before" "$after" \
            "$store" "$fill" 1000 $((lines1 - lines0)) "$st" >>"$raw"
        tail -n 1 "$raw" | awk -F'\t' '{ printf "  %-9s RSS %s -> %s KiB  %.0f bytes/object (RSS)  store %s  fill %s s  misses on re-check %s/%s  %s\n",
            $1, $3, $4, ($4 - $3) * 1024 / $2, $5, $6, $8, $7, $9 }'
        stop "${PEER_PID[$p]}"
    done
    stop "$CACHE_ORIGIN_PID"
    local notes=(--note "objects: $CACHE_OBJECTS distinct URLs /obj/<n>, 1,024-byte bodies with Cache-Control max-age=3600, fetched once each over 4 keep-alive connections; RSS (VmRSS of the measured processes) read after a warm-up of 200 other objects and 2 s after the fill"
        --note "re-check: 1,000 of the URLs fetched again; misses = requests the origin logged meanwhile (0 means every object was still cached)"
        --note "HAProxy allocates its whole cache (512 MB) at start, so its RSS does not move; its figure is from \`show cache\` (the 1 KiB blocks its objects occupy), in the store bytes column"
        --note "nginx proxy_cache is not in this table: it keeps bodies in files (page cache), not in its RSS")
    say ""
    $PY "$LIB/benchlib.py" report cache_mem "$raw" "$RESULTS/cache-mem-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}

scenario_evict() {
    local raw=$TMP/evict.tsv
    say ""
    say "== evict: S3-FIFO (src/cache/s3fifo.c) vs LRU, Zipf(0.9), 100,000 keys, cache of 10%"
    cc -O2 -std=c17 -D_GNU_SOURCE -I"$ROOT/src" "$BENCH/evict_sim.c" \
        "$ROOT/src/cache/s3fifo.c" -o "$TMP/evict_sim" -lm || die "cannot build evict_sim"
    "$TMP/evict_sim" 100000 2000000 10 42 >"$raw"
    column -t -s $'\t' "$raw" | sed 's/^/  /'
    local notes=(--note "bench/evict_sim.c links the server's own src/cache/s3fifo.c; every object has size 1; 2,000,000 requests; seed 42"
        --note "zipf0.9+scan: the same trace with a one-time scan of 20,000 new keys after every 10% of it")
    $PY "$LIB/benchlib.py" report evict "$raw" "$RESULTS/evict-$DATE.md" \
        "$REPRO" --gatehouse "$GH_BIN" "${notes[@]}"
}
