#!/usr/bin/env bash
# Real servers on loopback for the integration tests: PostgreSQL and Redis (Debian packages),
# a single-node Apache Kafka in KRaft mode (Maven Central jars) and MinIO (source build),
# each on a non-default port, with generated credentials.
#
#   tests/infra/servers.sh install            # apt packages + cached Kafka/MinIO artifacts
#   tests/infra/servers.sh start [component]  # all, or one of postgres redis kafka minio
#   tests/infra/servers.sh stop  [component]
#   tests/infra/servers.sh status
#
# GG_INFRA_DIR (default /tmp/gg-infra) holds data, logs and the `env` file the pytest
# fixtures read; GG_INFRA_PORT_BASE (default 25400) picks the ports, so several checkouts
# or helpers can run side by side: postgres +0, redis +1, kafka +2 (controller +3),
# minio +4 (console +5).
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${GG_INFRA_DIR:-/tmp/gg-infra}
# The port base is remembered in the env file, so `start kafka` later (e.g. from a test) reuses it.
base=${GG_INFRA_PORT_BASE:-}
if [[ -z $base && -f $dir/env ]]; then base=$(sed -n 's/^GG_INFRA_PORT_BASE=//p' "$dir/env"); fi
base=${base:-25400}
pg_port=$base redis_port=$((base + 1)) kafka_port=$((base + 2)) kafka_ctl_port=$((base + 3))
minio_port=$((base + 4)) minio_console_port=$((base + 5))
log() { printf '[infra] %s\n' "$*" >&2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  local need=()
  [[ -n $(pg_bin) ]] || need+=(postgresql)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian may start the packaged servers on their default ports; the tests use their own
    # instances on other ports and leave those alone.
  fi
  "$repo/ansible/artifacts/build.sh" >"$dir.artifacts"
}

secret() { head -c 18 /dev/urandom | base64 | tr -d '+/=' | head -c 24; }

write_env() {
  mkdir -p "$dir"
  if [[ ! -s $dir/secrets ]]; then
    umask 077
    {
      echo "PG_PASSWORD=$(secret)"
      echo "REDIS_PASSWORD=$(secret)"
      echo "MINIO_USER=gg$(secret | head -c 8)"
      echo "MINIO_PASSWORD=$(secret)"
    } >"$dir/secrets"
  fi
  # shellcheck disable=SC1091
  source "$dir/secrets"
  umask 077
  cat >"$dir/env" <<EOF
DATABASE_URL=postgresql+psycopg://gourmetgram:$PG_PASSWORD@127.0.0.1:$pg_port/gourmetgram
GG_PG_ADMIN_URL=postgresql+psycopg://gourmetgram:$PG_PASSWORD@127.0.0.1:$pg_port/postgres
REDIS_HOST=127.0.0.1
REDIS_PORT=$redis_port
REDIS_PASSWORD=$REDIS_PASSWORD
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port
S3_ENDPOINT_URL=http://127.0.0.1:$minio_port
AWS_ACCESS_KEY_ID=$MINIO_USER
AWS_SECRET_ACCESS_KEY=$MINIO_PASSWORD
GG_INFRA_DIR=$dir
GG_INFRA_PORT_BASE=$base
GG_INFRA_SCRIPT=$here/servers.sh
EOF
}

wait_port() { # name port timeout
  local t=0
  until (echo >"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
    sleep 0.5; t=$((t + 1))
    if ((t > $3 * 2)); then log "$1 did not open port $2; last log lines:"; tail -20 "$dir/$1.log" >&2; return 1; fi
  done
}

alive() { [[ -s $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

start_postgres() {
  local bin; bin=$(pg_bin)
  [[ -n $bin ]] || { log "postgresql not installed: run '$0 install'"; return 1; }
  # shellcheck disable=SC1091
  source "$dir/secrets"
  if [[ ! -s $dir/pg/PG_VERSION ]]; then
    mkdir -p "$dir/pg"; chown postgres: "$dir/pg"; chmod 700 "$dir/pg"
    local pw; pw=$(mktemp); echo "$PG_PASSWORD" >"$pw"; chown postgres "$pw"
    runuser -u postgres -- "$bin/initdb" -D "$dir/pg" -U gourmetgram --pwfile="$pw" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$dir/postgres.init.log"
    rm -f "$pw"
  fi
  touch "$dir/postgres.log"; chown postgres "$dir/postgres.log"
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp -c fsync=off -c max_connections=200" start >/dev/null
  head -1 "$dir/pg/postmaster.pid" >"$dir/postgres.pid"
  PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$pg_port" -U gourmetgram -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='gourmetgram'" | grep -q 1 ||
    PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$pg_port" -U gourmetgram -d postgres -qc "CREATE DATABASE gourmetgram"
}

stop_postgres() {
  local bin; bin=$(pg_bin)
  [[ -s $dir/pg/postmaster.pid ]] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null || true
  rm -f "$dir/postgres.pid"
}

start_redis() {
  # shellcheck disable=SC1091
  source "$dir/secrets"
  mkdir -p "$dir/redis"
  local conf="$dir/redis.conf"
  umask 077
  cat >"$conf" <<EOF
bind 127.0.0.1
port $redis_port
dir $dir/redis
appendonly yes
appendfsync everysec
requirepass $REDIS_PASSWORD
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
EOF
  redis-server "$conf"
  wait_port redis "$redis_port" 20
}

stop_redis() {
  alive redis && kill "$(cat "$dir/redis.pid")" && sleep 0.5 || true
  rm -f "$dir/redis.pid"
}

artifacts() { # resolve artifact paths (build them on first use)
  [[ -s $dir.artifacts ]] || "$repo/ansible/artifacts/build.sh" >"$dir.artifacts"
  # shellcheck disable=SC1090
  source "$dir.artifacts"
}

start_kafka() {
  artifacts
  local home="$dir/kafka-dist"
  if [[ ! -d $home/libs ]]; then
    mkdir -p "$home"; tar -C "$home" --strip-components=1 -xzf "$GG_KAFKA_TARBALL"
  fi
  cat >"$dir/kafka.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_ctl_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_ctl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/kafka
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
  local cp="$home/libs/*" jopts=(-Xms256m -Xmx768m -XX:+UseG1GC "-Dlog4j2.configurationFile=$home/config/log4j2.properties")
  if [[ ! -s $dir/kafka/meta.properties ]]; then
    java "${jopts[@]}" -cp "$cp" kafka.tools.StorageTool format \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$dir/kafka.properties" >"$dir/kafka.format.log" 2>&1 || { tail -3 "$dir/kafka.format.log" >&2; return 1; }
  fi
  setsid nohup java "${jopts[@]}" -cp "$cp" kafka.Kafka "$dir/kafka.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  wait_port kafka "$kafka_port" 90
}

stop_kafka() {
  if alive kafka; then
    local pid; pid=$(cat "$dir/kafka.pid")
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/kafka.pid"
}

start_minio() {
  artifacts
  # shellcheck disable=SC1091
  source "$dir/secrets"
  mkdir -p "$dir/minio"
  MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_BROWSER=off \
    setsid nohup "$GG_MINIO_BINARY" server "$dir/minio" --address "127.0.0.1:$minio_port" \
    --console-address "127.0.0.1:$minio_console_port" >>"$dir/minio.log" 2>&1 </dev/null &
  echo $! >"$dir/minio.pid"
  wait_port minio "$minio_port" 60
}

stop_minio() {
  alive minio && kill "$(cat "$dir/minio.pid")" || true
  rm -f "$dir/minio.pid"
}

components=(postgres redis kafka minio)
cmd=${1:-status}
shift || true
sel=("${@:-${components[@]}}")
case $cmd in
  install) mkdir -p "$(dirname "$dir")"; install ;;
  start)
    write_env
    for c in "${sel[@]}"; do
      if alive "$c"; then log "$c already running"; continue; fi
      t0=$SECONDS; "start_$c"; log "$c up in $((SECONDS - t0)) s"
    done
    echo "$dir/env"
    ;;
  stop) for c in "${sel[@]}"; do "stop_$c"; done ;;
  restart) for c in "${sel[@]}"; do "stop_$c"; done; write_env; for c in "${sel[@]}"; do "start_$c"; done ;;
  status) for c in "${components[@]}"; do if alive "$c"; then echo "$c running"; else echo "$c stopped"; fi; done ;;
  destroy) for c in "${components[@]}"; do "stop_$c"; done; rm -rf "$dir" ;;
  *) echo "usage: $0 install|start|stop|restart|status|destroy [component...]" >&2; exit 2 ;;
esac
