//go:build !crashpoints

package crashpoint

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/sinks"
)

// Enabled reports whether crash points are compiled in.
const Enabled = false

// Hit does nothing without the crashpoints build tag.
func Hit(name string) {}

// FS returns fs.
func FS(fs vfs.FS) vfs.FS { return fs }

// Rows returns rr.
func Rows(rr array.RecordReader) array.RecordReader { return rr }

// Destination returns d.
func Destination(d sinks.Destination) sinks.Destination { return d }

// Outbox returns ob.
func Outbox(ob sinks.Outbox) sinks.Outbox { return ob }
