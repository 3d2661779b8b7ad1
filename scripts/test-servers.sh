#!/usr/bin/env bash
# Builds the real servers the tests run against into .cache/servers/ (git-ignored): nsqd tools
# from Go modules, InfluxDB 1.6 from Debian, InfluxDB 1.8 from Go modules when it builds,
# toxiproxy (a TCP proxy that makes a loopback link slow, narrow or broken) and VictoriaMetrics
# single-node (the second storage kind) from Go modules; and installs Debian's Chromium, the
# browser the /ui page's tests drive.
# Idempotent: anything already cached is reported and left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/servers"
BIN="$OUT/bin"
NSQ_VERSION=v1.3.0
INFLUX18_VERSION=v1.8.10
INFLUX18_TIMEOUT="${INFLUX18_TIMEOUT:-900}"
TOXIPROXY_VERSION=v2.5.0
VICTORIAMETRICS_VERSION=v1.151.0
mkdir -p "$BIN"

build_nsq() {
  local stamp="$OUT/nsq.version" tools=(nsqd nsqlookupd nsq_tail) t cached=1
  for t in "${tools[@]}"; do [[ -x "$BIN/$t" ]] || cached=0; done
  [[ "$(cat "$stamp" 2>/dev/null)" == "$NSQ_VERSION" ]] || cached=0
  if ((cached)); then
    for t in "${tools[@]}"; do echo "$t: cached $BIN/$t"; done
    return
  fi
  local start=$SECONDS
  go mod download "github.com/nsqio/nsq@$NSQ_VERSION"
  # go install fails on nsq's go.mod `replace`, so build inside the (read-only) module folder.
  (cd "$(go env GOMODCACHE)/github.com/nsqio/nsq@$NSQ_VERSION" &&
    CGO_ENABLED=0 go build -o "$BIN/" ./apps/nsqd ./apps/nsqlookupd ./apps/nsq_tail)
  echo "$NSQ_VERSION" >"$stamp"
  for t in "${tools[@]}"; do echo "$t: built $BIN/$t ($((SECONDS - start))s)"; done
}

install_influx16() {
  local dir="$OUT/influxdb-1.6"
  if [[ -x "$dir/usr/bin/influxd" ]]; then
    echo "influxd-1.6: cached $dir/usr/bin/influxd"
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  # apt drops to the _apt user to download; let it write here.
  chmod 777 "$tmp"
  if ! (cd "$tmp" && apt-get download -q influxdb); then
    apt-get update -q
    (cd "$tmp" && apt-get download -q influxdb)
  fi
  # Extract beside the target and rename, so an interrupted run never looks cached.
  rm -rf "$dir.partial"
  dpkg-deb -x "$tmp"/influxdb_*.deb "$dir.partial"
  mv "$dir.partial" "$dir"
  rm -rf "$tmp"
  echo "influxd-1.6: built $dir/usr/bin/influxd ($("$dir/usr/bin/influxd" version))"
}

build_influx18() {
  local marker="$OUT/influxd-1.8.unavailable"
  if [[ -x "$BIN/influxd-1.8" ]]; then
    echo "influxd-1.8: cached $BIN/influxd-1.8"
    return
  fi
  # A failed attempt is remembered so later runs stay fast; delete the marker to retry.
  if [[ -f "$marker" ]]; then
    echo "influxd-1.8: unavailable (cached failure, see $marker)"
    return
  fi
  local start=$SECONDS gobin log rc=0
  gobin="$(mktemp -d)"
  log="$OUT/influxd-1.8.build.log"
  # Without -X main.version the binary reports "vunknown" (also in /ping's X-Influxdb-Version).
  GOBIN="$gobin" timeout "$INFLUX18_TIMEOUT" \
    go install -ldflags="-X main.version=${INFLUX18_VERSION#v}" \
    "github.com/influxdata/influxdb/cmd/influxd@$INFLUX18_VERSION" >"$log" 2>&1 || rc=$?
  if ((rc == 0)) && [[ -x "$gobin/influxd" ]]; then
    mv "$gobin/influxd" "$BIN/influxd-1.8"
    echo "influxd-1.8: built $BIN/influxd-1.8 ($((SECONDS - start))s)"
  else
    local reason="go install influxd@$INFLUX18_VERSION failed (exit $rc)"
    ((rc == 124)) && reason="go install influxd@$INFLUX18_VERSION timed out (limit ${INFLUX18_TIMEOUT}s)"
    { echo "$reason; took $((SECONDS - start))s; $(go version)"; tail -n 20 "$log"; } >"$marker"
    echo "influxd-1.8: unavailable ($reason, see $marker)"
  fi
  rm -rf "$gobin"
}

install_chromium() {
  if [[ -x /usr/bin/chromium ]]; then
    echo "chromium: installed /usr/bin/chromium"
    return
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  fi
  echo "chromium: installed /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null))"
}

# go_install_cached NAME STAMP PACKAGE VERSION BUILT [go install flags…]: builds PACKAGE@VERSION
# (pure Go) into $BIN/NAME from the binary go install names BUILT; skipped while $OUT/STAMP holds
# VERSION and the binary is there.
go_install_cached() {
  local name="$1" stamp="$OUT/$2" pkg="$3" version="$4" built="$5" bin="$BIN/$1"
  shift 5
  if [[ -x "$bin" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    echo "$name: cached $bin"
    return
  fi
  local start=$SECONDS gobin
  gobin="$(mktemp -d)"
  GOBIN="$gobin" CGO_ENABLED=0 go install "$@" "$pkg@$version"
  mv "$gobin/$built" "$bin"
  rm -rf "$gobin"
  echo "$version" >"$stamp"
  echo "$name: built $bin ($((SECONDS - start))s)"
}

build_toxiproxy() {
  # The module's server command is cmd/server; go install names the binary "server".
  go_install_cached toxiproxy-server toxiproxy.version github.com/Shopify/toxiproxy/v2/cmd/server "$TOXIPROXY_VERSION" server
}

build_victoriametrics() {
  # Pure Go, as upstream's "-pure" builds; without -X buildinfo.Version it reports no version.
  go_install_cached victoria-metrics victoria-metrics.version \
    github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics "$VICTORIAMETRICS_VERSION" victoria-metrics \
    -ldflags="-X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=victoria-metrics-$VICTORIAMETRICS_VERSION"
}

build_nsq
install_influx16
build_influx18
install_chromium
build_toxiproxy
build_victoriametrics
