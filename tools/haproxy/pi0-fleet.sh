#!/usr/bin/env bash
# pi0-fleet.sh - N `pi0 serve` replicas, each pinned to its own cores, behind HAProxy (pi0.cfg).
#
# usage: tools/haproxy/pi0-fleet.sh --model DIR --replicas N [--cores-per-replica C]
#                                   [--listen HOST:PORT] [--stats-socket PATH] [-- pi0 serve options...]
#
# Replica i (1..N) runs `taskset -c <cpus> pi0 serve --threads C --host 127.0.0.1 --port 0 ...` on the
# i-th group of C CPUs of this process's affinity list (default C = CPUs / N), on a free loopback
# port; then HAProxy runs in the foreground with tools/haproxy/pi0.cfg and PI0_REPLICA_i set to
# those ports. Robots connect to --listen [127.0.0.1:8000]. Printed on stdout, one line each:
#   replica I pid PID cpus LIST port PORT
#   haproxy pid PID listening on HOST:PORT
# SIGINT/SIGTERM stop HAProxy and every replica (pi0 serve drains: see its --drain-secs). Pass
# `--max-queue 0` after `--` so each replica refuses a second request instead of queueing it.
# The script does not restart a replica that dies: HAProxy stops routing to it (health check on
# /healthz) and its robots reconnect to the others; run each replica as a systemd unit with
# Restart=always if it should come back. The pi0 binary: $PI0, else build/pi0 next to this script's
# repository, else `pi0` on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cfg="$here/pi0.cfg"

die() { echo "pi0-fleet: $*" >&2; exit 2; }

model="" replicas=0 per=0 listen="127.0.0.1:8000" stats=""
serve_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=${2:?--model needs a value}; shift 2 ;;
        --replicas) replicas=${2:?--replicas needs a value}; shift 2 ;;
        --cores-per-replica) per=${2:?--cores-per-replica needs a value}; shift 2 ;;
        --listen) listen=${2:?--listen needs a value}; shift 2 ;;
        --stats-socket) stats=${2:?--stats-socket needs a value}; shift 2 ;;
        --) shift; serve_args=("$@"); break ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$model" ] || die "--model DIR is required"
case "$replicas" in ''|*[!0-9]*) die "--replicas: not a number: '$replicas'" ;; esac
[ "$replicas" -ge 2 ] && [ "$replicas" -le 8 ] ||
    die "--replicas $replicas: pi0.cfg has server lines for 2..8 replicas (one replica needs no balancer)"

if [ -n "${PI0:-}" ]; then pi0=$PI0
elif [ -x "$root/build/pi0" ]; then pi0="$root/build/pi0"
else pi0=$(command -v pi0) || die "no pi0 binary (set PI0=/path/to/pi0 or run make)"; fi
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$haproxy" ] || die "haproxy not found (Debian: apt-get install haproxy)"
command -v taskset >/dev/null || die "taskset not found (Debian package util-linux)"

# The CPUs this process may use, expanded from taskset's list form ("0-3,8,10-11").
cpus=()
IFS=, read -r -a ranges <<< "$(taskset -cp $$ | sed 's/.*: *//')"
for r in "${ranges[@]}"; do
    if [[ $r == *-* ]]; then for ((c = ${r%-*}; c <= ${r#*-}; c++)); do cpus+=("$c"); done
    else cpus+=("$r"); fi
done
[ "$per" -gt 0 ] || per=$(( ${#cpus[@]} / replicas ))
[ "$per" -gt 0 ] || die "$replicas replicas on ${#cpus[@]} CPUs: fewer CPUs than replicas"
[ $(( per * replicas )) -le ${#cpus[@]} ] ||
    die "$replicas replicas x $per cores > the ${#cpus[@]} CPUs available (${cpus[*]})"

tmp=$(mktemp -d /tmp/pi0-fleet.XXXXXX)
[ -n "$stats" ] || stats="$tmp/haproxy.sock"
pids=() hpid=""
stop() {
    trap - INT TERM EXIT
    [ -z "$hpid" ] || kill -TERM "$hpid" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap 'stop; exit 143' INT TERM
trap stop EXIT

for ((i = 1; i <= replicas; i++)); do
    list=$(IFS=,; echo "${cpus[*]:$(( (i - 1) * per )):$per}")
    taskset -c "$list" "$pi0" serve --model "$model" --host 127.0.0.1 --port 0 --threads "$per" \
        "${serve_args[@]}" > "$tmp/replica$i.out" &
    pids+=("$!")
done
# Each replica prints "listening on 127.0.0.1:PORT" once bound (loading the model comes first).
for ((i = 1; i <= replicas; i++)); do
    line=""
    for ((t = 0; t < 1200; t++)); do    # up to 10 min: a full-size checkpoint loads in ~10-100 s
        line=$(head -n 1 "$tmp/replica$i.out" 2>/dev/null || true)
        [[ $line == "listening on "* ]] && break
        kill -0 "${pids[i - 1]}" 2>/dev/null || die "replica $i exited before listening (see its error above)"
        sleep 0.5
    done
    [[ $line == "listening on "* ]] || die "replica $i did not start listening"
    export "PI0_REPLICA_$i=${line#listening on }"
    echo "replica $i pid ${pids[i - 1]} cpus $(IFS=,; echo "${cpus[*]:$(( (i - 1) * per )):$per}") port ${line##*:}"
done

export PI0_LB_BIND="$listen" PI0_LB_STATS="$stats"
"$haproxy" -db -f "$cfg" &
hpid=$!
# HAProxy binds before it answers on the admin socket; wait for the socket, or for its exit.
for ((t = 0; t < 100; t++)); do
    [ -S "$stats" ] && break
    kill -0 "$hpid" 2>/dev/null || { wait "$hpid" || true; hpid=""; die "haproxy exited (cannot bind $listen?)"; }
    sleep 0.1
done
[ -S "$stats" ] || die "haproxy did not create $stats"
echo "haproxy pid $hpid listening on $listen"
set +e
wait "$hpid"
rc=$?
hpid=""
exit "$rc"
