#!/usr/bin/env bash
# Runs the whole suite against a real PostgreSQL, a real Redis and Debian's headless Chromium.
# Installs them with apt-get when missing (as root); otherwise says exactly what to install.
# Each run gets private data folders and free ports, and everything it started is stopped on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

need_pkgs=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_pkgs+=(postgresql)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${need_pkgs[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || {
      echo "apt-get install ${need_pkgs[*]} failed" >&2; exit 1; }
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  else
    echo "The tests need: ${need_pkgs[*]}. Install them with: sudo apt-get install ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/mde-test.XXXXXX)
chmod 755 "$work"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$work"; fi

cleanup() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "Starting PostgreSQL on port $PG_PORT and Redis on port $REDIS_PORT"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null || exit 1
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { cat "$work/pg.log"; exit 1; }
"$pg_bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres mde || exit 1
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$work" --logfile "$work/redis.log" >/dev/null || exit 1

# The suite is hermetic: whatever the calling shell exports for the console (a benchmark's CACHE_URL, an
# operator's OIDC_ISSUER ...) is dropped, so only the servers started above are used.
for name in $(grep -oE 'env(\.[a-z_]+)?\("[A-Z0-9_]+"' console/settings.py | grep -oE '[A-Z0-9_]+' | sort -u); do
  unset "$name"
done
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/mde"
export CELERY_BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
export CONSOLE_DATA_DIR="$work/data"
export CHROMIUM_PATH=/usr/bin/chromium
export DJANGO_ALLOW_ASYNC_UNSAFE=true

echo "== ruff"
"$BIN/ruff" check . || exit 1
"$BIN/ruff" format --check . || exit 1
echo "== import layers (pyproject.toml [tool.importlinter])"
"$BIN/lint-imports" --no-cache || exit 1
echo "== migrations are up to date"
"$BIN/python" manage.py makemigrations --check --dry-run >/dev/null || {
  echo "Model changes without a migration: run manage.py makemigrations" >&2; exit 1; }
echo "== pytest"
"$BIN/python" -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
