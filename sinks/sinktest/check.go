package sinktest

import (
	"testing"

	"github.com/linkaud/linkaud/diff"
)

// CheckReceived verifies what a destination's far side received (messageIds
// in arrival order, duplicates included) against the messages that were
// offered (all, with their Seqs):
//
//   - every received id is one of the offered messages;
//   - per profile, first arrivals follow Seq order: a later message of a
//     profile never arrived before an earlier one;
//   - every message in mustHave arrived at least once.
//
// It returns the number of duplicate arrivals.
func CheckReceived(t testing.TB, offered []diff.Message, received []string, mustHave []diff.Message) int {
	t.Helper()
	byID := map[string]diff.Message{}
	for _, m := range offered {
		byID[m.ID] = m
	}
	seen := map[string]bool{}
	lastSeq := map[string]uint64{}
	lastID := map[string]string{}
	dups := 0
	for _, id := range received {
		m, ok := byID[id]
		if !ok {
			t.Errorf("received unknown message %q", id)
			continue
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		if m.Seq < lastSeq[m.UserID] {
			t.Errorf("profile %s: %s (seq %d) arrived after %s (seq %d)", m.UserID, id, m.Seq, lastID[m.UserID], lastSeq[m.UserID])
		}
		lastSeq[m.UserID] = m.Seq
		lastID[m.UserID] = id
	}
	missing := 0
	for _, m := range mustHave {
		if !seen[m.ID] {
			missing++
			if missing <= 5 {
				t.Errorf("message %s (seq %d, %s) never arrived", m.ID, m.Seq, m.UserID)
			}
		}
	}
	if missing > 5 {
		t.Errorf("… %d messages never arrived in all", missing)
	}
	return dups
}

// IDs returns the messageIds of msgs.
func IDs(msgs []diff.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
