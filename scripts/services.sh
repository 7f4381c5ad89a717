#!/usr/bin/env bash
# Throw-away services for the orchestrator, under one directory.
#
#   bash scripts/services.sh up DIR [postgres] [garage]   starts them; prints NAME=value lines
#   bash scripts/services.sh down DIR                     stops them (DIR stays; delete it after)
#
# `up` starts the services named (both when none is), each on free loopback
# ports, and prints the environment lines that point the orchestrator at them:
#
#   postgres  a PostgreSQL cluster under DIR/postgres with a database
#             `funetun` owned by the user `funetun`:
#               FUNETUN_DB=postgres://funetun@127.0.0.1:PORT/funetun
#   garage    a single-node Garage (an S3-compatible object store) under
#             DIR/garage, with a bucket `funetun` and a key allowed on it:
#               FUNETUN_BLOBS=s3://funetun/blobs
#               AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#               AWS_REGION=garage
#               AWS_ACCESS_KEY_ID=GK…  AWS_SECRET_ACCESS_KEY=…
#
# The same lines are written to DIR/env, so `set -a; . DIR/env; set +a` loads
# them. Nothing outside DIR is touched: no system service, no port fixed in
# advance. PostgreSQL refuses to run as root, so as root the cluster runs as
# the `postgres` user that Debian's package creates. Running `up` on a DIR
# whose services are up prints the same lines again; after `down`, `up`
# starts them again on the same ports and data. Debian's `postgresql` is
# installed when it is missing (scripts/setup.sh does the same); Garage is
# built from crates.io into ~/.cache/funetun/garage on first use (about 13
# minutes on two cores), then reused.
set -euo pipefail

usage() {
  echo "usage: bash scripts/services.sh up DIR [postgres] [garage] | down DIR" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
shift 2
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgres garage)
for s in "${services[@]}"; do
  case "$s" in postgres | garage) ;; *) usage ;; esac
done
pg=$dir/postgres
gd=$dir/garage
GARAGE_VERSION=2.5.0
GARAGE_ROOT=${FUNETUN_CACHE:-$HOME/.cache/funetun}/garage

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

garage_bin() {
  local bin=$GARAGE_ROOT/bin/garage
  if ! "$bin" --version 2>/dev/null | grep -q "cargo:$GARAGE_VERSION"; then
    log "building Garage $GARAGE_VERSION into $GARAGE_ROOT (once; about 13 minutes on two cores)"
    cargo install garage --version "$GARAGE_VERSION" --locked --root "$GARAGE_ROOT" \
      --no-default-features --features sqlite,bundled-libs >&2
  fi
  echo "$bin"
}

garage_up() {
  local bin s3 rpc admin key_id secret node
  bin=$(garage_bin)
  mkdir -p "$gd"
  if [ ! -f "$gd/garage.toml" ]; then
    s3=$(free_port)
    rpc=$(free_port)
    admin=$(free_port)
    cat >"$gd/garage.toml" <<TOML
metadata_dir = "$gd/meta"
data_dir = "$gd/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
    echo "$s3" >"$gd/s3_port"
    # The bucket's key, made here so that a restart gives the same lines.
    echo "GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')" >"$gd/key_id"
    python3 -c 'import secrets; print(secrets.token_hex(32))' >"$gd/secret"
  fi
  s3=$(cat "$gd/s3_port")
  key_id=$(cat "$gd/key_id")
  secret=$(cat "$gd/secret")
  if ! { [ -f "$gd/pid" ] && kill -0 "$(cat "$gd/pid")" 2>/dev/null; }; then
    nohup "$bin" -c "$gd/garage.toml" server >>"$gd/server.log" 2>&1 &
    echo $! >"$gd/pid"
  fi
  local i
  for i in $(seq 1 100); do
    node=$("$bin" -c "$gd/garage.toml" node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$node" ] && break
    sleep 0.2
  done
  [ -n "${node:-}" ] || { log "Garage did not start: see $gd/server.log"; exit 1; }
  if [ ! -f "$gd/ready" ]; then
    {
      "$bin" -c "$gd/garage.toml" layout assign -z dc1 -c 1G "$node"
      "$bin" -c "$gd/garage.toml" layout apply --version 1
      "$bin" -c "$gd/garage.toml" key import --yes -n funetun "$key_id" "$secret"
      "$bin" -c "$gd/garage.toml" bucket create funetun
      "$bin" -c "$gd/garage.toml" bucket allow --read --write --owner funetun --key funetun
    } >>"$gd/setup.log" 2>&1 || { log "setting up Garage failed: see $gd/setup.log"; exit 1; }
    touch "$gd/ready"
  fi
  echo "FUNETUN_BLOBS=s3://funetun/blobs"
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$s3"
  echo "AWS_REGION=garage"
  echo "AWS_ACCESS_KEY_ID=$key_id"
  echo "AWS_SECRET_ACCESS_KEY=$secret"
}

garage_down() {
  if [ -f "$gd/pid" ] && kill -0 "$(cat "$gd/pid")" 2>/dev/null; then
    kill "$(cat "$gd/pid")"
    local i
    for i in $(seq 1 50); do
      kill -0 "$(cat "$gd/pid")" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$gd/pid"
}

case "$cmd" in
  up)
    : >"$dir/env"
    for s in "${services[@]}"; do
      case "$s" in
        postgres) pg_up ;;
        garage) garage_up ;;
      esac
    done | tee "$dir/env"
    ;;
  down)
    pg_down
    garage_down
    ;;
  *)
    usage
    ;;
esac
