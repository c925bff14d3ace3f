package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/linkaud/linkaud/diff"
)

// ErrNoDeadLetter is returned by RetryDeadLetters for a messageId the
// dead-letter store does not hold.
var ErrNoDeadLetter = fmt.Errorf("engine: no such dead letter")

// RetryDeadLetters moves dead letters back to the end of their
// destination's outbox, with their messageIds, for the next delivery: of
// dest (every destination when ""), and only those whose messageId is in
// ids when ids is not empty. An id that is not a dead letter (of dest) is
// an error matching ErrNoDeadLetter, and then nothing moves.
func RetryDeadLetters(store *diff.Store, dest string, ids []string) (int, error) {
	if len(ids) == 0 {
		return store.RetryDeadLetters(dest, nil)
	}
	dls, err := store.DeadLetters(dest)
	if err != nil {
		return 0, err
	}
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(dls, func(d diff.DeadLetter) bool { return d.ID == id }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		where := ""
		if dest != "" {
			where = " of " + dest
		}
		return 0, &sentinelError{ErrNoDeadLetter, fmt.Sprintf("no dead letter%s with messageId %s", where, strings.Join(missing, ", "))}
	}
	return store.RetryDeadLetters(dest, ids)
}
