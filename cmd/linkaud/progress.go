package main

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/linkaud/linkaud/engine"
)

// rowsProgress draws, while a cycle streams its result from the warehouse,
// a spinner with the audience, the rows read so far and the rate:
//
//	outstanding_balance ⠙ (1,234,567 rows, 812,345 rows/s)
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
	if bar == nil {
		// max -1: the row count is not known in advance, so a spinner
		// with the count and the rate rather than a bar.
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(audience),
			progressbar.OptionShowCount(),
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
