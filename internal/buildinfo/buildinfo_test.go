package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/linkaud/linkaud", Version: "v1.2.3"},
		Deps: []*debug.Module{{Path: "github.com/duckdb/duckdb-go-bindings", Version: "v0.10506.0"}},
		Settings: []debug.BuildSetting{
			{Key: "-tags", Value: "duckdb_arrow"},
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	in := read(func() (*debug.BuildInfo, bool) { return bi, true })
	want := Info{
		Version: "v1.2.3", Commit: "0123abcd-dirty", BuildTime: "2026-11-30T12:00:00Z",
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		DuckDB: in.DuckDB, DuckDBBindings: "v0.10506.0", Tags: "duckdb_arrow",
	}
	if in != want {
		t.Errorf("got %+v\nwant %+v", in, want)
	}
	if !strings.HasPrefix(in.DuckDB, "v1.") {
		t.Errorf("DuckDB version %q: want the library's, v1.x", in.DuckDB)
	}
}

// What -ldflags -X sets wins over the build info; what neither records
// reads "unknown" rather than an empty field.
func TestLinkerFlagsWin(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "v9.9.9", "feedface", "2026-12-01T00:00:00Z"
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "other"}}}
	in := read(func() (*debug.BuildInfo, bool) { return bi, true })
	if in.Version != "v9.9.9" || in.Commit != "feedface" || in.BuildTime != "2026-12-01T00:00:00Z" {
		t.Errorf("got %+v", in)
	}
	version, commit, date = "", "", ""
	in = read(func() (*debug.BuildInfo, bool) { return nil, false })
	if in.Version != Unknown || in.Commit != Unknown || in.BuildTime != Unknown || in.DuckDBBindings != Unknown || in.Tags != Unknown {
		t.Errorf("without build info: %+v", in)
	}
}
