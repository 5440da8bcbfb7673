#!/usr/bin/env bash
# Runs `mpirun -np 2 ARGS...` across two "hosts" made on this machine: two network namespaces
# joined by a veth pair (10.77.N.1 and 10.77.N.2), one rank in each. mpirun starts in the first and
# launches the second's rank through `ip netns exec` (standing in for ssh); Open MPI's processes
# then talk TCP over the veth pair, as on a cluster. Needs root and iproute2; exits 77 (skip) when
# namespaces cannot be made here. The namespaces are removed on exit.
#   scripts/two-hosts.sh .build/debug/kiln train --limit 1024 --batch-size 64 --out /tmp/run
set -euo pipefail
net=$(( ($$ % 200) + 20 ))
a="kiln-$$-a" b="kiln-$$-b"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-two-hosts.XXXXXX")
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
if ! ip netns add "$a" 2>/dev/null; then echo "two-hosts: cannot create network namespaces here (needs root and iproute2)" >&2; exit 77; fi
ip netns add "$b"
ip link add "k$$a" netns "$a" type veth peer name "k$$b" netns "$b"
ip -n "$a" addr add "10.77.$net.1/24" dev "k$$a"
ip -n "$b" addr add "10.77.$net.2/24" dev "k$$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "k$$a" up
ip -n "$b" link set "k$$b" up

cat > "$work/agent" <<AGENT
#!/bin/sh
host=\$1; shift
case \$host in 10.77.$net.1) ns=$a;; 10.77.$net.2) ns=$b;; *) echo "two-hosts: unknown host \$host" >&2; exit 1;; esac
exec ip netns exec \$ns sh -c "\$*"
AGENT
chmod +x "$work/agent"
printf '10.77.%s.1 slots=1\n10.77.%s.2 slots=1\n' "$net" "$net" > "$work/hosts"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ip netns exec "$a" mpirun -np 2 --hostfile "$work/hosts" --mca plm_rsh_agent "$work/agent" \
    --mca btl tcp,self --mca btl_tcp_if_include "10.77.$net.0/24" --mca oob_tcp_if_include "10.77.$net.0/24" \
    -x PATH -x HOME -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$@"
