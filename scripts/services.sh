#!/usr/bin/env bash
# Throw-away database services for the orchestrator, under one directory.
#
#   bash scripts/services.sh up DIR    starts them; prints NAME=value lines
#   bash scripts/services.sh down DIR  stops them (DIR stays; delete it after)
#
# `up` starts a PostgreSQL cluster of its own under DIR/postgres, on a free
# loopback port, with a database `funetun` owned by the user `funetun`, and
# prints the environment lines that point the orchestrator at it:
#
#   FUNETUN_DB=postgres://funetun@127.0.0.1:PORT/funetun
#
# The same lines are written to DIR/env, so `set -a; . DIR/env; set +a` loads
# them. Nothing outside DIR is touched: no system service, no port fixed in
# advance. PostgreSQL refuses to run as root, so as root the cluster runs as
# the `postgres` user that Debian's package creates. Running `up` on a DIR
# whose services are up prints the same lines again; after `down`, `up`
# starts them again on the same port and data. Debian's `postgresql`
# is installed when it is missing (scripts/setup.sh does the same).
set -euo pipefail

usage() {
  echo "usage: bash scripts/services.sh up|down DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
pg=$dir/postgres

log() { printf '[services] %s\n' "$*" >&2; }

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      local sudo=""
      [ "$(id -u)" -ne 0 ] && sudo="sudo"
      log "installing Debian's postgresql"
      if ! apt-cache show postgresql >/dev/null 2>&1; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
      fi
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        postgresql >&2
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    else
      log "PostgreSQL's server programs (initdb, pg_ctl) are missing and apt-get is not available:"
      log "install PostgreSQL 13 or newer"
      exit 1
    fi
  fi
  echo "$bin"
}

# Runs a PostgreSQL program as a user it accepts.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_up() {
  local bin port
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ]; then
    # The postgres user must reach DIR/postgres.
    chmod a+x "$dir"
  fi
  if [ ! -f "$pg/data/PG_VERSION" ]; then
    mkdir -p "$pg"
    [ "$(id -u)" -eq 0 ] && chown postgres "$pg"
    as_pg "$bin/initdb" -D "$pg/data" -U funetun --auth=trust --no-locale -E UTF8 >"$pg/initdb.log" 2>&1 \
      || { log "initdb failed: see $pg/initdb.log"; exit 1; }
  fi
  if as_pg "$bin/pg_ctl" -D "$pg/data" status >/dev/null 2>&1; then
    port=$(cat "$pg/port")
  else
    # A restarted cluster keeps its port, so URLs handed out stay good.
    if [ -f "$pg/port" ]; then
      port=$(cat "$pg/port")
    else
      port=$(free_port)
      echo "$port" >"$pg/port"
    fi
    as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t 60 \
      -o "-p $port -k $pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
      || { log "PostgreSQL did not start: see $pg/server.log"; exit 1; }
    if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U funetun -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'funetun'" | grep -q 1; then
      as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U funetun funetun
    fi
  fi
  echo "FUNETUN_DB=postgres://funetun@127.0.0.1:$port/funetun"
}

pg_down() {
  local bin
  [ -f "$pg/data/PG_VERSION" ] || return 0
  bin=$(pg_bin)
  if as_pg "$bin/pg_ctl" -D "$pg/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null
  fi
}

case "$cmd" in
  up)
    pg_up | tee "$dir/env"
    ;;
  down)
    pg_down
    ;;
  *)
    usage
    ;;
esac
