// Package buildinfo says which linkaud this is: the module version, the
// commit and build time, and the Go and DuckDB versions it was built with.
// `linkaud --version`, the worker's /healthz and the linkaud_build_info
// metric all read Get.
//
// The facts come from runtime/debug.ReadBuildInfo — which `go install
// …@v1.2.3` fills with the module version, and `go build` in a git checkout
// with the commit (unless -buildvcs=false) — overridden by what the
// Makefile passes with -ldflags:
//
//	-X github.com/linkaud/linkaud/internal/buildinfo.version=v1.2.3
//	-X github.com/linkaud/linkaud/internal/buildinfo.commit=0123abc
//	-X github.com/linkaud/linkaud/internal/buildinfo.date=2026-12-01T10:00:00Z
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

// Set with -ldflags -X; empty means "ask the build info".
var (
	version string
	commit  string
	date    string
)

// Unknown stands for a fact the build did not record.
const Unknown = "unknown"

// Info describes the running binary. Every field is set: a fact the build
// did not record reads Unknown.
type Info struct {
	// Version is the module version: a release tag (v1.2.3), a Go
	// pseudo-version for an untagged commit, or "(devel)" for a build from
	// a checkout without -ldflags.
	Version string `json:"version"`
	// Commit is the VCS revision, with "-dirty" when the tree had local
	// changes.
	Commit string `json:"commit"`
	// BuildTime is when the binary was built (RFC 3339, UTC); without
	// -ldflags, the commit's time, which the Go toolchain records.
	BuildTime string `json:"build_time"`
	// Go is the toolchain version, e.g. go1.26.8.
	Go string `json:"go"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// DuckDB is the embedded DuckDB library's version, e.g. v1.5.0.
	DuckDB string `json:"duckdb"`
	// DuckDBBindings is the version of the duckdb-go-bindings module that
	// carries the library.
	DuckDBBindings string `json:"duckdb_bindings"`
	// Tags are the build tags (duckdb_arrow at least).
	Tags string `json:"tags"`
}

var (
	once sync.Once
	info Info
)

// Get returns the running binary's Info.
func Get() Info {
	once.Do(func() { info = read(debug.ReadBuildInfo) })
	return info
}

func read(readBuildInfo func() (*debug.BuildInfo, bool)) Info {
	in := Info{
		Version:        version,
		Commit:         commit,
		BuildTime:      date,
		Go:             runtime.Version(),
		Platform:       runtime.GOOS + "/" + runtime.GOARCH,
		DuckDB:         bindings.LibraryVersion(),
		DuckDBBindings: Unknown,
		Tags:           Unknown,
	}
	if bi, ok := readBuildInfo(); ok {
		if in.Version == "" {
			in.Version = bi.Main.Version
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if in.Commit == "" && settings["vcs.revision"] != "" {
			in.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				in.Commit += "-dirty"
			}
		}
		if in.BuildTime == "" {
			in.BuildTime = settings["vcs.time"]
		}
		if t, ok := settings["-tags"]; ok {
			in.Tags = t
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/duckdb/duckdb-go-bindings" {
				in.DuckDBBindings = d.Version
				if d.Replace != nil {
					in.DuckDBBindings = d.Replace.Version
				}
			}
		}
	}
	for _, f := range []*string{&in.Version, &in.Commit, &in.BuildTime, &in.DuckDB} {
		if *f == "" {
			*f = Unknown
		}
	}
	return in
}

// String is the multi-line text of `linkaud --version`.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "linkaud %s\n", in.Version)
	for _, l := range [][2]string{
		{"commit", in.Commit},
		{"built", in.BuildTime},
		{"go", in.Go + " " + in.Platform},
		{"duckdb", in.DuckDB + " (duckdb-go-bindings " + in.DuckDBBindings + ")"},
		{"tags", in.Tags},
	} {
		fmt.Fprintf(&b, "  %-7s %s\n", l[0], l[1])
	}
	return b.String()
}
