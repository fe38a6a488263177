#!/usr/bin/env bash
# Fetches Apache Kafka broker jars from Maven Central (with mvn), and runs a single-node KRaft broker
# (broker + controller in one JVM) on 127.0.0.1 for the integration tests and the demo.
#
#   test/brokers/kafka.sh fetch     download jars into the cache (idempotent)
#   test/brokers/kafka.sh start     fetch if needed, format storage, start, wait for metadata; prints the pid
#   test/brokers/kafka.sh stop      stop the broker this script started (by its pid file)
#   test/brokers/kafka.sh status    exit 0 when our broker is running
#
# Environment: KAFKA_VERSION (default 3.9.1), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093),
# CUTOVER_CACHE (default .cache under the repo; git-ignored), KAFKA_START_TIMEOUT seconds (120),
# KAFKA_STOCK=1: keep the broker's default group settings (6 s minimum session timeout, 3 s initial
# rebalance delay), as a user's broker has them, to check that the tests hold there too.
# KAFKA_EXTRA_PROPERTIES: a file appended to server.properties (a key given again there wins), for
# brokers with other listeners (SASL, TLS) or an authorizer; the readiness check then waits for the
# broker's "started" log line instead of asking for metadata over plaintext.
# KAFKA_FORMAT_ARGS: more arguments for the storage format step, split on spaces (for example
# --add-scram SCRAM-SHA-512=[name=admin,password=admin-secret]).
# For one node of a cluster (test/brokers/kafka-cluster.sh): KAFKA_NODE_ID (1), KAFKA_QUORUM_VOTERS
# (default: this node alone), KAFKA_CLUSTER_ID (default: a new one; every node of a cluster needs the same).
# KAFKA_HEAP: the JVM's maximum heap (768m).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${KAFKA_VERSION:-3.9.1}"
port="${KAFKA_PORT:-19092}"
cport="${KAFKA_CONTROLLER_PORT:-19093}"
cache="${CUTOVER_CACHE:-$repo/.cache}"
jars="$cache/kafka-$version/libs"
run="$cache/kafka-run-$port"
pidfile="$run/kafka.pid"
timeout="${KAFKA_START_TIMEOUT:-120}"
node="${KAFKA_NODE_ID:-1}"
voters="${KAFKA_QUORUM_VOTERS:-$node@127.0.0.1:$cport}"
heap="${KAFKA_HEAP:-768m}"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { printf '[kafka.sh] ERROR: %s\n' "$*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; it is needed to $2"; }

fetch() {
  if [ -f "$jars/.complete" ]; then return 0; fi
  need mvn "download the Kafka jars from Maven Central"
  need java "run the Kafka broker"
  mkdir -p "$cache/kafka-$version"
  local pom="$cache/kafka-$version/pom.xml"
  # Kafka 3.x logs through SLF4J 1 + reload4j; 4.x through SLF4J 2 + log4j2. The Maven artifact ships
  # no binding, so without one of these the broker prints nothing at all.
  local logdeps
  case "$version" in
    3.*) logdeps='<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>' ;;
    *)   logdeps='<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
               <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>' ;;
  esac
  cat >"$pom" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cutover.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    $logdeps
  </dependencies>
</project>
POM
  log "fetching org.apache.kafka:kafka_2.13:$version and dependencies with mvn (first run only)"
  rm -rf "$jars"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$jars" -DincludeScope=runtime \
    || die "mvn could not fetch kafka_2.13:$version (see output above)"
  touch "$jars/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers_metadata() {
  if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then
    grep -q 'Kafka Server started' "$run/server.log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    return
  fi
  # A metadata request through the broker's own admin client would need a second JVM (slow); kafkajs is
  # what the project uses anyway, so ask with it when node_modules is there, else fall back to the port.
  if [ -d "$repo/node_modules/kafkajs" ]; then
    (cd "$repo" && node -e '
      const { Kafka, logLevel } = require("kafkajs");
      const k = new Kafka({ brokers: [process.argv[1]], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000, requestTimeout: 2000 });
      const a = k.admin();
      a.connect().then(() => a.describeCluster()).then((c) => a.disconnect().then(() => process.exit(c.brokers.length > 0 ? 0 : 1))).catch(() => process.exit(1));
    ' "127.0.0.1:$port") >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  if running; then log "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; cat "$pidfile"; return 0; fi
  # Another process on our ports (another checkout's test broker, say) would answer the readiness check for
  # a broker of ours that failed to bind, and could be stopped under us: refuse instead.
  for p in "$port" "$cport"; do
    port_taken "$p" && die "127.0.0.1:$p is already in use by another process: point KAFKA_BROKERS at that broker, or set KAFKA_PORT and KAFKA_CONTROLLER_PORT to free ports"
  done
  need java "run the Kafka broker"
  fetch
  rm -rf "$run"; mkdir -p "$run/data"
  # Single-node KRaft needs only roles, listeners and replication factors of 1; the rest makes group
  # joins and topic creation fast for tests (KAFKA_STOCK=1 leaves it out).
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
  if [ "${KAFKA_STOCK:-0}" != 1 ]; then
    cat >>"$run/server.properties" <<PROPS
num.partitions=1
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=true
log.retention.hours=1
PROPS
  fi
  if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then
    [ -f "$KAFKA_EXTRA_PROPERTIES" ] || die "KAFKA_EXTRA_PROPERTIES=$KAFKA_EXTRA_PROPERTIES is not a file"
    cat "$KAFKA_EXTRA_PROPERTIES" >>"$run/server.properties"
  fi
  cat >"$run/log4j.properties" <<L4J
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$run/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
L4J
  cat >"$run/log4j2.properties" <<L4J2
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$run/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
L4J2
  local cp="$jars/*"
  local jvm=(-Xms256m -Xmx$heap -XX:+UseG1GC -Djava.awt.headless=true
             -Dlog4j.configuration="file:$run/log4j.properties"
             -Dlog4j2.configurationFile="$run/log4j2.properties")
  local cluster
  cluster="${KAFKA_CLUSTER_ID:-$(java -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)}"
  [ -n "$cluster" ] || die "StorageTool random-uuid printed nothing"
  local fargs=()
  read -r -a fargs <<<"${KAFKA_FORMAT_ARGS:-}"
  java -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool format --cluster-id="$cluster" -c "$run/server.properties" ${fargs[@]+"${fargs[@]}"} >"$run/format.log" 2>&1 \
    || { cat "$run/format.log" >&2; die "StorageTool format failed"; }
  # setsid: the broker must outlive the shell that started it (npm test's global setup) and be stoppable by pid.
  setsid java -cp "$cp" "${jvm[@]}" kafka.Kafka "$run/server.properties" >"$run/stdout.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
  log "started kafka $version (pid $(cat "$pidfile")), waiting for metadata on 127.0.0.1:$port"
  local waited=0
  until running && answers_metadata; do
    running || { tail -n 40 "$run/stdout.log" "$run/server.log" >&2 2>/dev/null || true; die "broker exited during start"; }
    [ "$waited" -ge "$timeout" ] && { stop; die "broker did not answer metadata within ${timeout}s"; }
    sleep 1; waited=$((waited + 1))
  done
  log "ready after ${waited}s: KAFKA_BROKERS=127.0.0.1:$port"
  cat "$pidfile"
}

stop() {
  if ! [ -f "$pidfile" ]; then log "not running (no pid file)"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored SIGTERM for 30s, sending SIGKILL"; kill -9 "$pid"; }
  fi
  rm -f "$pidfile"
  log "stopped (pid $pid)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
