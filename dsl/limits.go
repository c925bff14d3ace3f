package dsl

import (
	"fmt"
	"io"
	"os"
)

// Input limits. A workspace is text people write; these bound what one
// mistaken or hostile file costs (memory, time, terminal output) far above
// anything written by hand.
const (
	// MaxSourceBytes is the largest .la file read: a larger one is an
	// error, not parsed.
	MaxSourceBytes = 4 << 20
	// MaxListItems is the longest `in (…)` / `not in (…)` list. Longer
	// lists belong in a warehouse table, joined through the graph.
	MaxListItems = 10_000
	// MaxDiagnostics is how many diagnostics Render prints; the rest are
	// counted ("and K more").
	MaxDiagnostics = 50
	// MaxExcerptRunes is the widest source excerpt Render prints under a
	// diagnostic: a longer line is cut to a window around the caret.
	MaxExcerptRunes = 120
)

func sizeError(n int64) string {
	return fmt.Sprintf("the file is %s: the limit is %s (MaxSourceBytes); long value lists belong in a warehouse table", byteSize(n), byteSize(MaxSourceBytes))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// readLimited reads a source file, refusing one that grew past
// MaxSourceBytes since it was listed.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSourceBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSourceBytes {
		return nil, fmt.Errorf("%s", sizeError(int64(len(b))))
	}
	return b, nil
}
