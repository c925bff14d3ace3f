#!/usr/bin/env bash
# Checks what the README promises about plain Go tooling (docs/install.md):
#   - `go build ./...` and `go install github.com/linkaud/linkaud/cmd/linkaud@VERSION`
#     without flags stop with one error line, which names the duckdb_arrow tag;
#   - with `-tags duckdb_arrow` both work, and the installed binary's
#     --version names the module version it was installed at.
# `go install …@VERSION` is exercised for real, through a file:// module
# proxy holding this commit as version v0.0.0-ci.TIME (git archive makes the
# module zip), so no network beyond the usual module proxy is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# expect_tag_error LOG: the build failed with exactly one compiler error,
# the one naming the tag.
expect_tag_error() {
	local errs
	errs=$(grep -E '^[^#].*:[0-9]+:[0-9]+: ' "$1" || true)
	if [ "$(printf '%s\n' "$errs" | grep -c .)" -ne 1 ] || ! grep -q 'duckdb_arrow' <<<"$errs"; then
		echo "plain-go: want one error line naming duckdb_arrow, got:" >&2
		cat "$1" >&2
		exit 1
	fi
	echo "plain-go: as documented: $errs"
}

echo "plain-go: go build ./... without flags"
if GOFLAGS= go build ./... 2>"$tmp/build.log"; then
	echo "plain-go: go build ./... succeeded without -tags duckdb_arrow; update docs/install.md and this check" >&2
	exit 1
fi
expect_tag_error "$tmp/build.log"
# docs/install.md quotes the line: keep it true.
line=$(grep -E '^executor/duckdb_arrow_required.go:[0-9]+:[0-9]+: ' "$tmp/build.log")
if ! grep -qxF "$line" docs/install.md; then
	echo "plain-go: docs/install.md does not show the error as go build prints it: $line" >&2
	exit 1
fi

echo "plain-go: go build -tags duckdb_arrow ./..."
GOFLAGS= go build -tags duckdb_arrow ./...

# A module proxy on disk serving this commit as a version of its own: the
# go command indexes the packages of a module version once (GOCACHE's
# modindex) and never looks at its files again, so each run needs a new one.
version=v0.0.0-ci.$(date +%s)
mod=github.com/linkaud/linkaud
proxy="$tmp/proxy/$mod/@v"
mkdir -p "$proxy"
git archive --format=zip --prefix="$mod@$version/" -o "$proxy/$version.zip" HEAD
cp go.mod "$proxy/$version.mod"
printf '{"Version":"%s","Time":"%s"}\n' "$version" "$(git log -1 --format=%cI)" >"$proxy/$version.info"
echo "$version" >"$proxy/list"
upstream=$(go env GOPROXY)
export GOPROXY="file://$tmp/proxy,$upstream" GONOSUMDB="$mod" GOFLAGS= GOBIN="$tmp/bin"
# The module cache keeps what it downloads, this test version included:
# drop it before and after, so each run installs its own commit (and the
# dependencies already in the cache are not fetched again).
modcache=$(go env GOMODCACHE)
forget() {
	chmod -R u+w "$modcache/$mod@$version" 2>/dev/null || true
	rm -rf "$modcache/$mod@$version" "$modcache/cache/download/$mod/@v/$version".*
}
forget
trap 'forget; chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

echo "plain-go: go install $mod/cmd/linkaud@$version without flags"
if go install "$mod/cmd/linkaud@$version" 2>"$tmp/install.log"; then
	echo "plain-go: go install succeeded without -tags duckdb_arrow; update docs/install.md and this check" >&2
	exit 1
fi
expect_tag_error "$tmp/install.log"

echo "plain-go: go install -tags duckdb_arrow $mod/cmd/linkaud@$version"
go install -tags duckdb_arrow "$mod/cmd/linkaud@$version"
first=$("$tmp/bin/linkaud" --version | head -1)
if [ "$first" != "linkaud $version" ]; then
	echo "plain-go: the installed binary says \"$first\", want \"linkaud $version\"" >&2
	exit 1
fi
echo "plain-go: installed binary: $first ($(du -h "$tmp/bin/linkaud" | cut -f1))"
