#!/usr/bin/env bash
# End to end with an ordinary Kafka client: `linkaud devbroker` as the broker,
# linkaud's Kafka sink as the producer (TestKcatProduce), kcat (librdkafka,
# Debian package kcat) as the consumer. Checks every record's key, headers
# (event, audience, message_id) and value, and per-key order; the
# transactional topic is read with isolation.level=read_committed.
#
# Usage: sinks/testdata/kcat-e2e.sh   (from anywhere; needs go and kcat)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

if ! command -v kcat >/dev/null; then
	echo "kcat-e2e: kcat is not installed (apt-get install -y kcat)" >&2
	exit 1
fi

work=$(mktemp -d)
broker_pid=""
cleanup() {
	if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -tags duckdb_arrow -o "$work/linkaud" ./cmd/linkaud
"$work/linkaud" --log-format text devbroker --addr 127.0.0.1:0 --partitions 3 >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!

addr=""
for _ in $(seq 1 100); do
	addr=$(awk '/^listening on /{print $3}' "$work/broker.out")
	[ -n "$addr" ] && break
	if ! kill -0 "$broker_pid" 2>/dev/null; then cat "$work/broker.err" >&2; exit 1; fi
	sleep 0.1
done
[ -n "$addr" ] || { echo "kcat-e2e: devbroker did not start" >&2; cat "$work/broker.err" >&2; exit 1; }
kcat -L -b "$addr" -m 10 >/dev/null
echo "kcat-e2e: devbroker at $addr"

LINKAUD_KCAT_BROKERS="$addr" LINKAUD_KCAT_EXPECT="$work" \
	go test -tags duckdb_arrow -count=1 -run '^TestKcatProduce$' ./sinks/ >"$work/produce.log" 2>&1 ||
	{ cat "$work/produce.log" >&2; exit 1; }

fail=0
for mode in plain txn; do
	topic=linkaud-e2e
	extra=()
	if [ "$mode" = txn ]; then
		topic=linkaud-e2e-txn
		extra=(-X isolation.level=read_committed)
	fi
	kcat -C -b "$addr" -t "$topic" -o beginning -e -q "${extra[@]}" -f '%k\t%h\t%s\n' >"$work/$mode.got"
	# A stable sort by key keeps each key's records in arrival order: equal
	# files mean the same records, with the same headers, in per-key order.
	sort -s -t $'\t' -k1,1 "$work/$mode" >"$work/$mode.want.sorted"
	sort -s -t $'\t' -k1,1 "$work/$mode.got" >"$work/$mode.got.sorted"
	if diff -u "$work/$mode.want.sorted" "$work/$mode.got.sorted" >"$work/$mode.diff"; then
		echo "kcat-e2e: $topic: $(wc -l <"$work/$mode.got") records, keys, headers, values and per-key order as produced"
	else
		echo "kcat-e2e: $topic differs from what linkaud produced:" >&2
		head -40 "$work/$mode.diff" >&2
		fail=1
	fi
done
exit $fail
