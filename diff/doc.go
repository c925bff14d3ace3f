// Package diff is linkaud's state: per audience the current generation of
// members and entity rows, the diff of a new generation against it, the
// event outbox that delivery reads, and the dead-letter store. It lives in
// one Pebble database (github.com/cockroachdb/pebble/v2).
//
// Entry points: Open returns a *Store; OpenReadOnly one that only reads
// (while a worker holds the directory, or on a read-only one). Store.Cycle merges an audience's
// sorted result rows (an arrow array.RecordReader described by a Layout;
// LayoutOf derives it from the checked audience) against the current
// generation and commits the next one with its events. Store.Pending, Ack
// and DeadLetter implement sinks.Outbox; DeadLetters and RetryDeadLetters
// serve `linkaud deadletters`, MoveOutbox, DropOutbox, MoveDeadLetters and
// DropDeadLetters the stranded messages of `linkaud outbox|deadletters
// move|drop`; Backlog(s) the metrics; Verify, Backup, Restore and Export
// `linkaud state`. Enable, Disable,
// State, Audiences, Runs, RecordDelivery, Members and Purge are the
// lifecycle behind `linkaud audiences`.
//
// # A cycle
//
// The stored generation N-1 and the result rows are both in key order
// (profile_key, key_0, …, key_n-1, byte order, NULL first), so Cycle walks
// them together in one pass with one Pebble iterator — scans run at ~12M
// keys/s where point reads manage ~130k/s — and writes only the keys that
// appear, disappear or whose enrichment values changed: an unchanged
// audience costs reads, about a kilobyte of bookkeeping (audience state,
// run record) and no row writes. Decoding the Arrow batches (keys to the
// tuple encoding, enrichment values to JSON) runs in a goroutine of its
// own, a batch ahead of the merge. The input is checked as it streams:
// rows out of order fail the cycle with ErrUnsorted before anything
// becomes current. Rows with equal
// keys (the warehouse holding an entity key twice) are deduplicated: the
// row with the smallest encoded values stays, whatever order they came in,
// and the run counts the duplicates.
//
// Events follow DESIGN.md. Per profile: Audience Entered / Exited (in N
// and not N-1, or the reverse) and Audience Membership Changed (an
// identify with trait <audience>: true|false). Per activation naming an
// entity at step k: Entity Added / Removed for each (profile, key_k) pair
// in N and not N-1, or the reverse, where a pair is in a generation when
// at least one of its rows' chains (profile, key_0..key_k) is — two
// wishlists holding one product are one pair, and a chain more or less to
// it sends nothing; a chain with a NULL key (one that stops above step k)
// is no pair. For k = 0 a pair's chains are one run of the key order; below
// it they are spread over the profile's rows, so pairs.go gathers a
// profile's pairs by entity key and decides them at the profile's end,
// in entity-key order. Entity Changed (entity_changed) goes to a pair in
// both whose step-k columns that the activation sends differ between the
// first chain of each side. An activation's first cycle (no earlier successful cycle knew it,
// or its event, entity or destination changed) sends nothing unless
// send_current, and then Entered, Added or Membership Changed for everyone
// in N. A new audience version diffs against the previous version's
// membership and pairs. When the path down to an activation's entity
// changed, the old pairs name other chains: the activation starts afresh,
// as a new one would. The stored rows are the same whatever the
// activations: pairs are derived from them each cycle, so a state written
// when pairs were chains needs no rewrite.
//
// Entity Removed says why (properties.reason: no_longer_matches while the
// profile stays in, profile_exited) and, with CycleInput.Lookup, carries
// the entity's current values when the warehouse still has it
// (entity_values current; else last_seen, the values of N-1). The
// removals are held until the merge ends — the result stream, and the
// connection it holds, are done by then — and their keys looked up per
// step, LookupBatch at a time, so their events follow the cycle's others.
// Audience Exited says no_longer_matches, or definition_changed when the
// cycle is a new version's first.
//
// Payloads are Segment-spec JSON, keys in a fixed order: type, event, userId, messageId (derived from activation, event,
// profile, the named entity's key and generation, so a redelivery carries
// the same one), timestamp (the cycle start), then properties — audience_key, the
// audience boolean, the enriched traits, reason, entity_values, changes,
// and for entity events _entity_context (its first chain in key order)
// nested from the path's top entity down to the named one
// (each level: its key column, its enrichment columns, the next level) —
// or, for Membership Changed, traits {<audience>: bool}; last
// context.personas. Activation properties select the enrichment columns
// (nil: all); keys are always sent, and columns of steps below the named
// entity never (one pair may stand for many deeper rows). Entered and
// Exited carry no entity context. An event over Options.MaxEventBytes is
// logged by messageId, counted, and not written.
//
// A cycle does not build them: it stores each event as what varies
// (kind, profile, keys, stored values, reason, changes) against one event
// template per destination that holds what the cycle's events share, and
// the outbox's readers render the JSON (template.go).
//
// # Atomicity
//
// The switch from N-1 to N is one synced Pebble batch holding the audience
// state (generation N), the outbox index entries that make the cycle's
// events visible, and either every row change (the common case, while they
// fit in Options.FinalBatchBytes) or, for a larger change, a pointer to
// the change staged beforehand. Before that batch nothing of the cycle is
// visible: events are staged under the cycle's id and only indexed events
// are pending; staged row changes sit in a delta table. After it, staged
// changes are rolled forward into the data table (idempotently; Open
// finishes a roll-forward a crash interrupted). A cycle that fails, or a
// process that stops, before the switch leaves N-1 current and no event:
// the failure path, or the next Open, deletes what the cycle staged (found
// through its in-progress record) and marks the audience Failed.
//
// Visible is not yet durable: Pebble lets readers see a synced batch as
// soon as it is applied, while its sync is still on the way, and a
// process killed then loses it. Delivery must not send from such a batch:
// the next cycle would compute the same generation again and send its
// events under the same messageIds with other bytes (another timestamp).
// So Pending reads the outbox only up to the last commit number whose
// batch's Commit returned (Store.durableCommit; TestPendingOnlyDurable
// holds a log sync open to check it).
//
// # Rollback detection
//
// Pebble replays its write-ahead log on Open and reads a record that fails
// its checksum, or a log cut short or deleted, as the tail of an
// interrupted write: it drops it and the batches after it without an
// error. Committed generations would then vanish silently — the next cycle
// diffs against the older generation, and the events of the lost change
// are never sent again. So a committed generation is also recorded where a
// loss of the log cannot take it back with it:
//
//   - Every decision of the store — a cycle's final batch making a
//     generation current, Enable, Disable, Purge, RetryDeadLetters, the
//     moves and drops of stranded messages — carries the next epoch (the
//     counter 0x01 "epoch") in its own batch, committed with a sync
//     (commitEpoch).
//   - After that sync, the epoch and every audience's generation are
//     written to the commit record, COMMITTED in the state directory: one
//     line of JSON and its CRC-32C, written to a new file, synced, renamed
//     over the old one, the directory synced. It lives outside Pebble, so
//     whatever happens to Pebble's files leaves it as it was.
//   - Open (and OpenReadOnly) compare: a state whose epoch is below the
//     record's, or whose generation of an audience is below the record's
//     at the same epoch, is refused with a *RollbackError naming the
//     audiences whose generation is missing. A state ahead of the record
//     (a process stopped between the sync and the record) is fine: the
//     record is written again. A missing record is written from the state,
//     with a warning; a damaged one is refused like damaged Pebble files.
//
// Acknowledgements and dead-lettering by delivery are not decisions: one
// lost with a log tail makes the message pending again, delivered again
// under its messageId, which at-least-once delivery allows. They commit
// without the record's extra fsyncs.
//
// And committed state does not stay in the log alone for long: a
// generation committed Options.FlushInterval (a minute) or 100 generations
// after the last flush starts one, and Close flushes (unless a write
// failed: Pebble cannot rotate a broken log).
//
// # Damage
//
// Pebble checksums each block of an sstable (data, index, filter,
// properties), each record of the write-ahead log and of the MANIFEST. A
// read that fails a checksum returns an error marked as corruption; a
// compaction that meets one calls the event listener's DataCorruption,
// which Pebble's default turns into a Fatalf. The store installs its own
// listener: it records the damage (health), and every later method fails
// with the *CorruptionError naming the file — so nothing computes on, or
// sends from, a state found damaged, and the CLI prints one line and exits
// 2. Verify reads every key and reports; Export writes what still reads as
// JSON lines, skipping past a damaged file's key range; Backup and Restore
// copy whole states. OpenReadOnly with Options.Salvage opens a state that
// Open refuses, for those tools. diff/corruption_test.go damages the files
// of a state one at a time (bit flips, truncations, a deleted log) and
// holds every trial to a clean refusal or a clean run's exact result.
//
// # Read-only opens
//
// Pebble's lock lets one process hold a directory. OpenReadOnly reads it in
// place (Pebble's read-only mode) when nobody holds it, and otherwise a
// private snapshot: sstables hard-linked (immutable), MANIFEST, OPTIONS
// and logs copied, the copy taken again if the MANIFEST changed meanwhile
// (a flush or compaction overtook it). The commit record is read first, so
// the snapshot holds at least what it records.
//
// # Keys
//
// Texts inside keys use an order-preserving tuple encoding (keys.go):
// NULL is 0x00; a text is 0x01, its bytes with 0x00 escaped as 0x00 0xFF,
// and the terminator 0x00 0x01. Numbers are 8-byte big-endian unless noted.
// The first byte names the table:
//
//	0x01 name                          → counter (cycle, commit, dead, epoch)
//	0x02 aud                           → audience state (JSON: status,
//	                                     generation, version, layout, counts)
//	0x03 aud profile                   → member: its trait values
//	0x03 aud profile key_0 … key_n-1   → entity row: its step values
//	0x04 cycle profile [key_0 …]       → staged change: 'S' value | 'D'
//	0x05 aud activation                → signature (event, destination, path)
//	0x06 aud run                       → run record (JSON), last 50 kept
//	0x07 cycle                         → cycle in progress (JSON)
//	0x08 dest commit                   → outbox index: cycle, remaining, first, total (uvarints)
//	0x09 cycle dest idx(4)             → outbox message: whole (version 1)
//	                                     or what varies (version 2)
//	0x0a dest ref                      → dead letter: message, reason, time, seq
//	0x0b aud                           → size history: a point per run,
//	                                     downsampled (history.go)
//	0x0c cycle dest                    → event template of the version-2
//	                                     messages of 0x09 cycle dest
//
// A member's key is a prefix of its rows' keys, so one scan of 0x03 aud
// yields each member followed by its rows — the order of the result rows. A
// member without entity rows (in through another branch of the condition)
// stores only its member key. Values are sequences of JSON fragments, each
// preceded by its length (uvarint): a row holds its step enrichment
// columns, a member its trait columns, in Layout.Enrich order.
//
// A message's Seq is commit<<32 | idx: commit numbers are allocated when a
// cycle's final batch commits, so Seqs grow in the order messages become
// pending even when cycles of several audiences run at once.
package diff
