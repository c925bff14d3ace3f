package main

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/linkaud/linkaud/engine"
)

// rowsProgress draws, while a cycle streams its result from the warehouse,
// a spinner with the audience, the rows read so far and the rate:
//
//	⠙ outstanding_balance: 1,234,567 rows read (812345 rows/s) [1s]
//
// It is an engine.HookRowsRead: put it in engine.Options.Hooks. Each
// audience gets its own line, cleared when its stream ends so the logs and
// the summary that follow print cleanly.
type rowsProgress struct {
	w    io.Writer
	mu   sync.Mutex
	bars map[string]*progressbar.ProgressBar
}

var _ engine.HookRowsRead = (*rowsProgress)(nil)

// newRowsProgress returns a progress hook drawing on stderr when stderr is
// a terminal, else nil (logs and pipes get no progress noise).
func newRowsProgress() *rowsProgress {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return newRowsProgressTo(os.Stderr)
}

func newRowsProgressTo(w io.Writer) *rowsProgress {
	return &rowsProgress{w: w, bars: map[string]*progressbar.ProgressBar{}}
}

// OnRowsRead implements engine.HookRowsRead.
func (p *rowsProgress) OnRowsRead(audience string, rows int64, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bar := p.bars[audience]
	if done {
		if bar != nil {
			_ = bar.Finish()
			delete(p.bars, audience)
		}
		return
	}
	// The count goes in the description: with no total, the bar's own
	// count would print as "n/-". Describe renders (throttled) with the
	// count it had, so the rate lags a batch; a new bar is built with its
	// description instead, so its first line is right.
	desc := audience + ": " + groupDigits(rows) + " rows read"
	if bar != nil {
		bar.Describe(desc)
	} else {
		// max -1: the row count is not known in advance, so a spinner
		// with the count and the rate rather than a bar.
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		p.bars[audience] = bar
	}
	_ = bar.Set64(rows)
}

// groupDigits prints n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
