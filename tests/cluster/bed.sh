#!/usr/bin/env bash
# The cluster test bed's network: hosts as network namespaces, three
# switched segments, every address private to the namespaces.
#
#   tests/cluster/bed.sh up   ID [NODES] [WAS]   create (fails if ID exists)
#   tests/cluster/bed.sh down ID                 remove (idempotent)
#   tests/cluster/bed.sh list                    beds on this machine
#
# ID is a short name unique to the run (the tests use a random suffix), so
# parallel runs never share a namespace. Each bed is:
#
#   client 10.77.1.10 ─┐ front 10.77.1.0/24
#                      lb 10.77.1.2 (+ the service address 10.77.1.100)
#                      lb 10.77.2.2 ─┐ dmz 10.77.2.0/24
#   n1..nN 10.77.2.11.. ─────────────┤ (balancer -> nodes, health checks)
#   redis  10.77.2.50 ───────────────┘ (shared state)
#   n1..nN 10.77.3.11.. ─┐ back 10.77.3.0/24
#   was1..M 10.77.3.21.. ┘ (nodes -> application servers)
#
# The three bridges live in a namespace of their own ("sw"), and each veth
# pair is created directly between two namespaces, so nothing is created
# in, or addressed from, the root namespace: two beds can use the same
# addresses side by side. The client cannot reach the nodes or the WAS, and
# the balancer cannot reach the WAS: only the paths of a real DMZ exist.
set -euo pipefail

PFX=ghc

ns() { echo "$PFX-$1-$2"; }

# link ID HOST IFNAME BRIDGE ADDR/LEN: a veth from HOST's IFNAME to BRIDGE.
link() {
    local id=$1 host=$2 ifn=$3 br=$4 addr=$5
    local h sw peer
    h=$(ns "$id" "$host")
    sw=$(ns "$id" sw)
    peer="${host}-${ifn}"
    ip -n "$h" link add "$ifn" type veth peer name "$peer" netns "$sw"
    ip -n "$sw" link set "$peer" master "$br" up
    ip -n "$h" addr add "$addr" dev "$ifn"
    ip -n "$h" link set "$ifn" up
}

host() {
    local id=$1 name=$2
    ip netns add "$(ns "$id" "$name")"
    ip -n "$(ns "$id" "$name")" link set lo up
}

up() {
    local id=$1 nodes=${2:-3} was=${3:-3}
    case "$id" in
        *[!a-z0-9]* | "") echo "bed: ID must be lower-case letters and digits" >&2; exit 2 ;;
    esac
    if [ ${#id} -gt 8 ]; then
        echo "bed: ID must be at most 8 characters" >&2
        exit 2
    fi
    if ip netns list | grep -q "^$PFX-$id-"; then
        echo "bed: $id exists already" >&2
        exit 1
    fi
    # A half-built bed is removed, whatever failed.
    trap 'down "$id" >/dev/null 2>&1 || true' ERR INT TERM
    host "$id" sw
    local sw
    sw=$(ns "$id" sw)
    for br in front dmz back; do
        ip -n "$sw" link add "$br" type bridge
        ip -n "$sw" link set "$br" up
    done
    host "$id" client
    link "$id" client eth0 front 10.77.1.10/24
    host "$id" lb
    link "$id" lb eth0 front 10.77.1.2/24
    ip -n "$(ns "$id" lb)" addr add 10.77.1.100/24 dev eth0
    link "$id" lb eth1 dmz 10.77.2.2/24
    host "$id" redis
    link "$id" redis eth0 dmz 10.77.2.50/24
    local i
    for i in $(seq 1 "$nodes"); do
        host "$id" "n$i"
        link "$id" "n$i" eth0 dmz "10.77.2.$((10 + i))/24"
        link "$id" "n$i" eth1 back "10.77.3.$((10 + i))/24"
    done
    for i in $(seq 1 "$was"); do
        host "$id" "was$i"
        link "$id" "was$i" eth0 back "10.77.3.$((20 + i))/24"
    done
    trap - ERR INT TERM
    echo "bed $id: up ($nodes nodes, $was WAS)"
}

down() {
    local id=$1 n pids
    for n in $(ip netns list | awk '{print $1}' | grep "^$PFX-$id-" || true); do
        # Whatever still runs in the bed's namespaces was started for it.
        pids=$(ip netns pids "$n" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$n" 2>/dev/null || true
    done
    echo "bed $id: down"
}

list() {
    ip netns list | awk '{print $1}' | sed -n "s/^$PFX-\([a-z0-9]*\)-sw$/\1/p"
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) shift; down "$1" ;;
    list) list ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
