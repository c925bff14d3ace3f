#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS…]: runs CMD with a private PostgreSQL server,
# started for it and stopped after it, its DSN in LINKAUD_TEST_PG_DSN.
#
# The cluster lives in a temporary directory (initdb), listens on 127.0.0.1
# only, on a free port, and runs as a non-root user (postgres when this
# script runs as root). Tests that need PostgreSQL read the DSN and skip,
# saying so, when it is unset:
#   - LINKAUD_TEST_PG_DSN already set: CMD runs against that server.
#   - PostgreSQL not installed: CMD runs without one (the tests say they
#     skipped). .ci/run installs the Debian package first, so CI never skips;
#     LINKAUD_REQUIRE_PG=1 makes a missing server an error here too.
set -euo pipefail

if [ -n "${LINKAUD_TEST_PG_DSN:-}" ]; then
	exec "$@"
fi

bindir=""
if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
	bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && bindir=$d
	done
fi
if [ -z "$bindir" ]; then
	if [ "${LINKAUD_REQUIRE_PG:-}" = 1 ]; then
		echo "with-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2
		exit 2
	fi
	echo "with-postgres: PostgreSQL is not installed: the PostgreSQL tests will skip" >&2
	exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/linkaud-pg.XXXXXX")
run_as=()
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
	chown postgres "$dir"
	run_as=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)))

stop() {
	"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT

"${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U linkaud --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 2; }
# fsync off: the cluster is thrown away; the tests measure nothing on it.
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
	start >/dev/null || { cat "$dir/server.log" >&2; exit 2; }

export LINKAUD_TEST_PG_DSN="postgres://linkaud@127.0.0.1:$port/postgres?sslmode=disable"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
set +e
"$@"
rc=$?
set -e
exit $rc
