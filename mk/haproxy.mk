# Serving many robots (tools/haproxy/): several pinned `pi0 serve` replicas behind HAProxy.
# haproxy (Debian 12: 2.6): the load balancer of the recipe. Nothing links it; tests/test_haproxy.py
#   runs the shipped config (tools/haproxy/pi0.cfg) through tools/haproxy/pi0-fleet.sh, so it is in
#   DEBS for `make deps`/CI; without it that test prints a skip line. (taskset comes from util-linux,
#   an Essential package, so it is always there.)
DEBS += haproxy
