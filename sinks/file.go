package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/linkaud/linkaud/diff"
)

func init() {
	Register(Type{
		Name: "file",
		Keys: []Key{
			{Name: "path", Kind: Text, Required: true, Doc: "JSONL file to append to, relative to the workspace"},
		},
		Open: openFile,
	})
	Register(Type{
		Name: "stdout",
		Open: func(c *Config) (Destination, error) {
			return &stdoutDest{w: c.Stdout}, nil
		},
	})
}

// fileDest appends one JSON object per line and fsyncs before Send returns,
// so an outbox entry is acknowledged only once its line is on disk.
type fileDest struct {
	path string
}

func openFile(c *Config) (Destination, error) {
	p := c.LocalPath("path")
	if p == "" {
		// Open reports what LocalPath recorded, if anything, instead.
		return nil, errors.New("file: path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	return &fileDest{path: p}, nil
}

// Send appends the batch's lines in one write and fsyncs the file (and, when
// the file is new, its directory). The file is opened per Send so that a
// log rotation is followed. If the write fails half way, the file is cut
// back to where it was, so a retry never leaves a torn line. A process
// killed inside write(2) can leave one, though (the kernel stops a large
// write between pages for a fatal signal): a file that does not end with a
// newline is first cut back to its last whole line. Nothing acknowledged
// is lost so: a line counts only once Send returned after its fsync, and
// the events of the torn batch are still in the outbox.
func (f *fileDest) Send(ctx context.Context, batch []diff.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, be := jsonLines(batch)
	if buf.Len() == 0 {
		return be.Err()
	}
	_, statErr := os.Stat(f.path)
	created := errors.Is(statErr, os.ErrNotExist)
	fh, err := os.OpenFile(f.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	defer fh.Close()
	start, err := cutTornLine(fh)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	if _, err := fh.Write(buf.Bytes()); err != nil {
		if terr := fh.Truncate(start); terr != nil {
			return fmt.Errorf("file: write failed (%v) and the partial batch could not be removed: %w", err, terr)
		}
		return fmt.Errorf("file: %w", err)
	}
	// After a failed fsync nothing is known about what reached the disk:
	// report a retryable failure; a retry may duplicate lines, each with
	// its messageId.
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("file: fsync: %w", err)
	}
	if created {
		if err := syncDir(filepath.Dir(f.path)); err != nil {
			return fmt.Errorf("file: fsync directory: %w", err)
		}
	}
	return be.Err()
}

// cutTornLine truncates fh after its last newline when it does not end with
// one, and returns its size.
func cutTornLine(fh *os.File) (int64, error) {
	size, err := fh.Seek(0, io.SeekEnd)
	if err != nil || size == 0 {
		return size, err
	}
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := fh.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size, nil
	}
	if err := fh.Truncate(end); err != nil {
		return 0, fmt.Errorf("cutting a torn last line: %w", err)
	}
	return end, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (f *fileDest) Close() error { return nil }

// jsonLines renders each payload compacted onto one line. A payload that is
// not valid JSON cannot be written as a JSONL line and is rejected.
func jsonLines(batch []diff.Message) (*bytes.Buffer, *BatchError) {
	var buf bytes.Buffer
	be := NewBatchError(len(batch))
	for i, m := range batch {
		n := buf.Len()
		if err := json.Compact(&buf, m.Payload); err != nil {
			buf.Truncate(n)
			be.Fail(i, Permanent(fmt.Errorf("payload of %s is not valid JSON: %v", m.ID, err)))
			continue
		}
		buf.WriteByte('\n')
	}
	return &buf, be
}

// stdoutDest writes JSONL to standard output (or OpenOptions.Stdout).
type stdoutDest struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *stdoutDest) Send(ctx context.Context, batch []diff.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, be := jsonLines(batch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	// Standard output redirected to a file is synced like the file
	// destination; a pipe or terminal cannot be and need not be.
	if f, ok := s.w.(*os.File); ok {
		if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
			return fmt.Errorf("stdout: fsync: %w", err)
		}
	}
	return be.Err()
}

func (s *stdoutDest) Close() error { return nil }
