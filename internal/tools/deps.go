//go:build tools

// Package tools pins the modules linkaud builds with, so that `go mod tidy`
// keeps them in go.mod while the packages that use them are being written.
package tools

import (
	_ "github.com/alecthomas/kong"
	_ "github.com/alecthomas/participle/v2"
	_ "github.com/apache/arrow-go/v18/arrow"
	_ "github.com/cenkalti/backoff/v5"
	_ "github.com/cockroachdb/datadriven"
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/robfig/cron/v3"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/snowflakedb/gosnowflake"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "golang.org/x/time/rate"
)
