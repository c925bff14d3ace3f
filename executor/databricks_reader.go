package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// dbxReader streams a succeeded statement's chunks as Arrow batches. A
// goroutine of its own downloads the chunks in order and decodes each
// one's IPC stream as its bytes arrive, up to dbxAhead batches ahead of the
// consumer.
type dbxReader struct {
	d   *Databricks
	ctx context.Context
	end func()
	st  *dbxStatement

	schema  *arrow.Schema
	first   *dbxChunk    // chunk 0, opened by start for its schema
	batches chan pgBatch // from produce; closed when it returns
	stop    chan struct{}
	once    sync.Once
	readerState
}

var _ array.RecordReader = (*dbxReader)(nil)

// dbxChunk is one chunk being read.
type dbxChunk struct {
	index int
	link  dbxLink
	body  io.ReadCloser
	ipc   *ipc.Reader
}

func (c *dbxChunk) close() {
	if c.ipc != nil {
		c.ipc.Release()
	}
	if c.body != nil {
		c.body.Close()
	}
}

func (r *dbxReader) start() error {
	m := r.st.Manifest
	if m.TotalChunkCount == 0 {
		r.schema = dbxSchema(m)
		return nil
	}
	c, err := r.open(0)
	if err != nil {
		return err
	}
	r.first = c
	r.schema = c.ipc.Schema()
	r.batches = make(chan pgBatch, dbxAhead)
	r.stop = make(chan struct{})
	go r.produce()
	return nil
}

// link returns chunk i's external link: from the statement's result when it
// carries it (and fresh is false), else from GET …/result/chunks/{i}.
func (r *dbxReader) link(i int, fresh bool) (dbxLink, error) {
	if !fresh && r.st.Result != nil {
		for _, l := range r.st.Result.ExternalLinks {
			if l.ChunkIndex == i {
				return l, nil
			}
		}
	}
	var data dbxChunkData
	path := "/api/2.0/sql/statements/" + url.PathEscape(r.st.StatementID) + "/result/chunks/" + strconv.Itoa(i)
	if err := r.d.call(r.ctx, http.MethodGet, path, nil, &data); err != nil {
		return dbxLink{}, fmt.Errorf("chunk %d: %w", i, err)
	}
	for _, l := range data.ExternalLinks {
		if l.ChunkIndex == i {
			return l, nil
		}
	}
	return dbxLink{}, fmt.Errorf("chunk %d: the API answered without its link", i)
}

// open downloads chunk i and reads its IPC stream's schema. A link that
// expired, or a download the storage refused or lost, is retried with a
// fresh link, a few times.
func (r *dbxReader) open(i int) (*dbxChunk, error) {
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 250 * time.Millisecond):
			case <-r.ctx.Done():
				return nil, context.Cause(r.ctx)
			}
		}
		l, err := r.link(i, attempt > 0)
		if err != nil {
			return nil, err
		}
		body, retry, err := r.download(l)
		if err != nil {
			last = fmt.Errorf("chunk %d: %w", i, err)
			if retry && r.ctx.Err() == nil {
				continue
			}
			return nil, last
		}
		rd, err := ipc.NewReader(body, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			body.Close()
			last = fmt.Errorf("chunk %d: not an Arrow IPC stream: %w", i, err)
			if r.ctx.Err() == nil {
				continue // a download cut short before the schema
			}
			return nil, last
		}
		return &dbxChunk{index: i, link: l, body: body, ipc: rd}, nil
	}
	return nil, last
}

// download GETs a presigned link: no Authorization header (the API's rule
// for EXTERNAL_LINKS), the link's own http_headers if it lists some.
func (r *dbxReader) download(l dbxLink) (io.ReadCloser, bool, error) {
	if l.ExternalLink == "" {
		return nil, true, errors.New("the link is empty")
	}
	if exp, err := time.Parse(time.RFC3339, l.Expiration); err == nil && time.Now().After(exp) {
		return nil, true, fmt.Errorf("the link expired at %s", l.Expiration)
	}
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, l.ExternalLink, nil)
	if err != nil {
		return nil, false, err
	}
	for k, v := range l.HTTPHeaders {
		req.Header.Set(k, v)
	}
	resp, err := r.d.links.Do(req)
	if err != nil {
		// The URL holds a signature: keep it out of the message.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, r.ctx.Err() == nil, fmt.Errorf("downloading: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		// 403 and 404: an expired or revoked link; 5xx: the storage.
		retry := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound ||
			resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return nil, retry, fmt.Errorf("downloading: HTTP %d from the result storage: %s", resp.StatusCode, firstLine(string(msg)))
	}
	return resp.Body, false, nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return s[:i]
		}
	}
	return s
}

// produce reads every chunk in order into batches until the result ends,
// fails, or finish stops it. It checks each chunk's rows against its link's
// row_count and the total against the manifest's, so a stream cut at a
// message boundary cannot pass for the whole result.
func (r *dbxReader) produce() {
	defer close(r.batches)
	send := func(b pgBatch) bool {
		select {
		case r.batches <- b:
			return true
		case <-r.stop:
			if b.rec != nil {
				b.rec.Release()
			}
			return false
		}
	}
	fail := func(err error) { send(pgBatch{err: r.d.error(r.ctx, err)}) }
	var total int64
	c := r.first
	r.first = nil
	for i := 0; ; i++ {
		if c == nil {
			var err error
			if c, err = r.open(i); err != nil {
				fail(err)
				return
			}
		}
		if !arrow.TypeEqual(arrow.StructOf(c.ipc.Schema().Fields()...), arrow.StructOf(r.schema.Fields()...)) {
			c.close()
			fail(fmt.Errorf("chunk %d has schema %s, chunk 0 %s", i, c.ipc.Schema(), r.schema))
			return
		}
		var rows int64
		for c.ipc.Next() {
			rec := c.ipc.RecordBatch()
			rows += rec.NumRows()
			rec.Retain()
			if !send(pgBatch{rec: rec}) {
				c.close()
				return
			}
		}
		err := c.ipc.Err()
		c.close()
		if err != nil {
			fail(fmt.Errorf("chunk %d after %d rows: %w", i, rows, err))
			return
		}
		if c.link.RowCount > 0 && rows != c.link.RowCount {
			fail(fmt.Errorf("chunk %d ended after %d of its %d rows", i, rows, c.link.RowCount))
			return
		}
		total += rows
		if n := c.link.NextChunkIndex; n != nil && *n != i+1 {
			fail(fmt.Errorf("chunk %d points at chunk %d next: chunks are read in order", i, *n))
			return
		}
		if i+1 >= r.st.Manifest.TotalChunkCount {
			break
		}
		c = nil
	}
	if m := r.st.Manifest; m.TotalRowCount > 0 && total != m.TotalRowCount {
		fail(fmt.Errorf("the result ended after %d of its %d rows", total, m.TotalRowCount))
	}
}

func (r *dbxReader) Schema() *arrow.Schema { return r.schema }

func (r *dbxReader) Next() bool {
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	if r.done || r.batches == nil {
		r.done = true
		return false
	}
	b, ok := <-r.batches
	switch {
	case !ok:
		r.done = true
		r.finish()
		return false
	case b.err != nil:
		r.readerState.fail(b.err)
		r.finish()
		return false
	}
	r.current = b.rec
	return true
}

func (r *dbxReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	r.finish()
}

// finish stops the producer (its downloads end with the context), waits for
// it and releases what it made; it runs once.
func (r *dbxReader) finish() {
	r.once.Do(func() {
		if r.batches != nil {
			close(r.stop)
			r.end()
			for b := range r.batches {
				if b.rec != nil {
					b.rec.Release()
				}
			}
		}
		if r.first != nil {
			r.first.close()
		}
		r.end()
	})
}
