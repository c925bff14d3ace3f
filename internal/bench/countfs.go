package bench

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts every byte Pebble writes through it: WAL, memtable
// flushes, compactions, manifest and options files. It is the honest
// measure of a cycle's write cost; Pebble's own metrics split it up and
// leave some of it out.
type countingFS struct {
	vfs.FS
	written atomic.Int64
}

func newCountingFS(fs vfs.FS) *countingFS { return &countingFS{FS: fs} }

// Written is the number of bytes written since the FS was made.
func (fs *countingFS) Written() int64 { return fs.written.Load() }

func (fs *countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, n: &fs.written}, nil
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, err)
}

func (fs *countingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(f, err)
}

func (fs *countingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, err)
}

func (fs *countingFS) Unwrap() vfs.FS { return fs.FS }

type countingFile struct {
	vfs.File
	n *atomic.Int64
}

func (f *countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.n.Add(int64(n))

	return n, err
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.n.Add(int64(n))
	return n, err
}
