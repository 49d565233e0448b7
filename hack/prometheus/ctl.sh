#!/usr/bin/env bash
# The local Prometheus beside the test cluster, and the exporter it scrapes
# (hack/prometheus/exporter.py serves the *.prom files tests write).
#
#   ctl.sh up      start both, or keep them when they answer
#   ctl.sh start   start Prometheus again on the address it had
#   ctl.sh stop    stop Prometheus only (the exporter and the samples stay)
#   ctl.sh down    stop both and remove their state
#
# State lives in $PACKIT_CLUSTER_DIR/prometheus.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DIR="$PACKIT_CLUSTER_DIR/prometheus"

prometheus_ready() {
  [[ -f "$DIR/addr" ]] && curl -fs -o /dev/null "http://$(cat "$DIR/addr")/-/ready"
}

exporter_healthy() {
  [[ -f "$DIR/exporter-addr" ]] && curl -fs -o /dev/null "http://$(cat "$DIR/exporter-addr")/healthz"
}

start_exporter() {
  local port
  stop "$DIR/exporter.pid" exporter.py
  mkdir -p "$DIR/samples"
  port="$(free_port)"
  setsid python3 "$HACK_DIR/prometheus/exporter.py" "$DIR/samples" 127.0.0.1 "$port" \
    </dev/null >"$DIR/exporter.log" 2>&1 9>&- &
  echo $! >"$DIR/exporter.pid"
  echo "127.0.0.1:$port" >"$DIR/exporter-addr"
  wait_until exporter_healthy "$DIR/exporter.log" "the exporter"
}

start_prometheus() {
  stop "$DIR/pid" prometheus
  [[ -f "$DIR/addr" ]] || echo "127.0.0.1:$(free_port)" >"$DIR/addr"
  cat >"$DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ["$(cat "$DIR/exporter-addr")"]
YAML
  setsid prometheus \
    --config.file="$DIR/prometheus.yml" \
    --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=2h \
    --web.listen-address="$(cat "$DIR/addr")" \
    --web.enable-lifecycle \
    </dev/null >"$DIR/prometheus.log" 2>&1 9>&- &
  echo $! >"$DIR/pid"
  wait_until prometheus_ready "$DIR/prometheus.log" "Prometheus"
}

# stop PIDFILE NAME: end the process and wait until it is gone, so its
# port is free for the next start.
stop() {
  local pid
  [[ -f "$1" ]] || return 0
  pid="$(cat "$1")"
  stop_pidfile "$1" "$2"
  while [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# wait_until CHECK LOG WHAT: up to 30 s for CHECK to pass.
wait_until() {
  local deadline=$((SECONDS + 30))
  until "$1"; do
    if ((SECONDS >= deadline)); then
      cat "$2" >&2
      die "$3 did not start"
    fi
    sleep 0.1
  done
}

mkdir -p "$DIR"
case "${1:-}" in
  up)
    command -v prometheus >/dev/null || die "prometheus is not installed (run hack/install-deps.sh as root)"
    exporter_healthy || start_exporter
    prometheus_ready || start_prometheus
    ;;
  start) start_prometheus ;;
  stop) stop "$DIR/pid" prometheus ;;
  down)
    stop "$DIR/pid" prometheus
    stop "$DIR/exporter.pid" exporter.py
    rm -rf "$DIR"
    ;;
  *) die "usage: $0 up|start|stop|down" ;;
esac
