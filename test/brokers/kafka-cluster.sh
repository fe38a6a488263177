#!/usr/bin/env bash
# A three-node KRaft Kafka cluster on 127.0.0.1 for the failover tests: every node is a combined broker and
# controller (a 3-voter quorum), each with its own ports and data directory, started by kafka.sh.
#
#   test/brokers/kafka-cluster.sh start    fetch if needed, format, start the three nodes, wait for all; prints
#                                          one "<node id> <port> <pid>" line per node
#   test/brokers/kafka-cluster.sh stop     stop the three nodes (by kafka.sh's pid files)
#   test/brokers/kafka-cluster.sh status   exit 0 when all three run
#
# Environment: KAFKA_CLUSTER_PORTS (27092,27093,27094), KAFKA_CLUSTER_CONTROLLER_PORTS (27192,27193,27194),
# KAFKA_HEAP per JVM (384m: three brokers share the machine), plus what kafka.sh reads (KAFKA_VERSION,
# CUTOVER_CACHE, KAFKA_START_TIMEOUT).
#
# The cluster is set up as production clusters are: internal topics replicated three times, and topics
# created without explicit settings get replication factor 3 and min.insync.replicas=2, so an
# acknowledged write (acks=all) is on two nodes at least and survives the loss of any one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CUTOVER_CACHE:-$repo/.cache}"
IFS=, read -r -a ports <<<"${KAFKA_CLUSTER_PORTS:-27092,27093,27094}"
IFS=, read -r -a cports <<<"${KAFKA_CLUSTER_CONTROLLER_PORTS:-27192,27193,27194}"
[ "${#ports[@]}" = 3 ] && [ "${#cports[@]}" = 3 ] || { echo "[kafka-cluster.sh] ERROR: three ports and three controller ports are needed" >&2; exit 2; }
export KAFKA_HEAP="${KAFKA_HEAP:-384m}"

node_env() {
  local i=$1
  echo KAFKA_NODE_ID=$((i + 1)) KAFKA_PORT="${ports[$i]}" KAFKA_CONTROLLER_PORT="${cports[$i]}"
}

start() {
  bash "$here/kafka.sh" fetch
  local voters="1@127.0.0.1:${cports[0]},2@127.0.0.1:${cports[1]},3@127.0.0.1:${cports[2]}"
  # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding; generating it here saves a JVM start.
  # Like Kafka's own generator, draw again when it begins with '-': the storage tool would read it as an option.
  local id=-
  while [ "${id:0:1}" = - ]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); done
  local props="$cache/kafka-cluster-${ports[0]}.properties"
  mkdir -p "$cache"
  cat >"$props" <<PROPS
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
default.replication.factor=3
min.insync.replicas=2
PROPS
  # A node cannot finish starting until a quorum of controllers answers: start the three together.
  local pids=() i
  for i in 0 1 2; do
    # shellcheck disable=SC2046
    env $(node_env "$i") KAFKA_QUORUM_VOTERS="$voters" KAFKA_CLUSTER_ID="$id" KAFKA_EXTRA_PROPERTIES="$props" \
      bash "$here/kafka.sh" start >"$cache/kafka-cluster-start-$i.out" &
    pids+=($!)
  done
  local failed=0
  for i in 0 1 2; do wait "${pids[$i]}" || failed=1; done
  if [ "$failed" = 1 ]; then stop; echo "[kafka-cluster.sh] ERROR: a node did not start (see above)" >&2; exit 1; fi
  for i in 0 1 2; do echo "$((i + 1)) ${ports[$i]} $(tail -n1 "$cache/kafka-cluster-start-$i.out")"; done
}

stop() {
  local i
  for i in 0 1 2; do
    # shellcheck disable=SC2046
    env $(node_env "$i") bash "$here/kafka.sh" stop &
  done
  wait
}

status() {
  local i
  for i in 0 1 2; do
    # shellcheck disable=SC2046
    env $(node_env "$i") bash "$here/kafka.sh" status || return 1
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
