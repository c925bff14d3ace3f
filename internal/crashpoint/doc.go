// Package crashpoint lets tests kill linkaud with a real SIGKILL at named
// points of a compute cycle and of delivery, to check that a crash anywhere
// loses nothing and invents nothing.
//
// The points are compiled in only with the `crashpoints` build tag; in
// every other build Hit is an empty function and the wrappers return what
// they are given, so production binaries carry no way to kill themselves.
// With the tag, the process reads two environment variables once, at
// start:
//
//	LINKAUD_CRASHPOINT=NAME:N   send ourselves SIGKILL at the N-th hit of
//	                            point NAME (N defaults to 1)
//	LINKAUD_CRASHPOINT_TRACE=F  append the name of every hit to file F, one
//	                            per line (a clean run's trace tells a test
//	                            which points exist and how often they fire)
//
// Points (see Points): the engine calls Hit at cycle.planned, wraps a
// cycle's result stream with Rows (cycle.batch per record handed to the
// differ, cycle.streamed at the end of the stream, cycle.lookup before each
// lookup of removed entities' current values), wraps the state's file
// system with FS (pebble.write, pebble.sync: before each write and fsync of
// any Pebble file, WAL commits included), and wraps delivery with
// Destination and Outbox (deliver.send before a Send, deliver.sent after a
// Send succeeded — the file destination has fsynced — and before the
// acknowledgement, deliver.acked after it). engine.RunOnce adds cycle.committed
// and run.delivered.
//
// Entry points: Hit, FS, Rows, Destination, Outbox. internal/crashtest
// builds linkaud with the tag and drives it.
package crashpoint

// Environment variables read by a binary built with the crashpoints tag.
const (
	EnvPoint = "LINKAUD_CRASHPOINT"
	EnvTrace = "LINKAUD_CRASHPOINT_TRACE"
)

// Points are the names Hit is called with, in the order a run meets them.
var Points = []string{
	"cycle.planned",
	"cycle.batch",
	"cycle.streamed",
	"cycle.lookup",
	"pebble.write",
	"pebble.sync",
	"cycle.committed",
	"deliver.send",
	"deliver.sent",
	"deliver.acked",
	"run.delivered",
}
