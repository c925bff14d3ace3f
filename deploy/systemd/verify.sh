#!/usr/bin/env bash
# Checks the systemd unit with systemd-analyze verify (syntax, directives,
# the binary it starts) and prints its exposure score. Used by .ci/run;
# skips with a message where systemd-analyze is missing.
# Usage: deploy/systemd/verify.sh BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:?usage: verify.sh BINARY}")
if ! command -v systemd-analyze >/dev/null; then
	echo "systemd: systemd-analyze not found: the unit was NOT verified (install systemd to check it)" >&2
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The unit as shipped, pointing at the binary just built (verify checks
# that ExecStart's program exists and is executable).
sed "s|/usr/local/bin/linkaud|$bin|" "$here/linkaud.service" >"$tmp/linkaud.service"
if ! out=$(systemd-analyze verify "$tmp/linkaud.service" 2>&1); then
	echo "$out" >&2
	echo "systemd: systemd-analyze verify failed" >&2
	exit 1
fi
# verify exits 0 on some warnings: fail on any line about our unit.
if grep -F "linkaud.service" <<<"$out" >&2; then
	echo "systemd: systemd-analyze verify warned about the unit" >&2
	exit 1
fi
echo "systemd: linkaud.service verified"
systemd-analyze security --offline=yes "$tmp/linkaud.service" 2>/dev/null | tail -1 || true
