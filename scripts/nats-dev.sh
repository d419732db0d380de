#!/usr/bin/env bash
# A 3-node NATS JetStream cluster on loopback for development (docs/cluster.md):
#   scripts/nats-dev.sh start   writes target/nats-dev/n{1,2,3}.conf, starts the nodes, waits
#                               until each is healthy, prints the URLs to give Mapline
#   scripts/nats-dev.sh stop    stops the nodes it started (their pids are in target/nats-dev)
# Clients on 4222-4224, routes on 6222-6224, monitoring on 8222-8224; stores in
# target/nats-dev/n*/. Uses the pinned nats-server of scripts/install-nats.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="target/nats-dev"

case "${1:-}" in
  start)
    ./scripts/install-nats.sh >/dev/null
    mkdir -p "${dir}"
    for i in 1 2 3; do
      if [ -f "${dir}/n${i}.pid" ] && kill -0 "$(cat "${dir}/n${i}.pid")" 2>/dev/null; then
        echo "n${i} is already running (pid $(cat "${dir}/n${i}.pid"))"; continue
      fi
      cat > "${dir}/n${i}.conf" <<CONF
server_name: n${i}
listen: 127.0.0.1:422$((i + 1))
http: 127.0.0.1:822$((i + 1))
jetstream {
  store_dir: "$(pwd)/${dir}/n${i}"
  sync_interval: always   # fsync before acknowledging: Mapline refuses a node without it
}
cluster {
  name: mapline-dev
  listen: 127.0.0.1:622$((i + 1))
  routes: [nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224]
}
CONF
      target/venv/bin/nats-server -c "${dir}/n${i}.conf" >>"${dir}/n${i}.log" 2>&1 &
      echo $! > "${dir}/n${i}.pid"
    done
    for i in 1 2 3; do
      for _ in $(seq 300); do
        if curl -sf "http://127.0.0.1:822$((i + 1))/healthz" >/dev/null 2>&1; then break; fi
        sleep 0.1
      done
      curl -sf "http://127.0.0.1:822$((i + 1))/healthz" >/dev/null \
        || { echo "n${i} is not healthy; see ${dir}/n${i}.log" >&2; exit 1; }
    done
    echo "cluster: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
    echo "monitoring: http://127.0.0.1:8222 http://127.0.0.1:8223 http://127.0.0.1:8224"
    ;;
  stop)
    for i in 1 2 3; do
      if [ -f "${dir}/n${i}.pid" ]; then
        kill "$(cat "${dir}/n${i}.pid")" 2>/dev/null || true
        rm -f "${dir}/n${i}.pid"
      fi
    done
    ;;
  *)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
