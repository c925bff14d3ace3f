package sinks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// readJSONL returns the messageIds of the lines of a JSONL file, failing on
// a line that is not a JSON object.
func readJSONL(t testing.TB, data []byte) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		ids = append(ids, e.MessageID)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("file does not end with a newline: a torn line")
	}
	return ids
}

func TestFileShared(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) *sinktest.Target {
		dir := t.TempDir()
		d, err := sinks.Open(&dsl.Destination{Name: "audit", Type: "file", Settings: map[string]dsl.Setting{
			"path": {Text: "out/events.jsonl"},
		}}, sinks.OpenOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "out", "events.jsonl")
		return &sinktest.Target{
			Dest: d,
			Received: func(t testing.TB) []string {
				data, err := os.ReadFile(path)
				if os.IsNotExist(err) {
					return nil
				}
				if err != nil {
					t.Fatal(err)
				}
				return readJSONL(t, data)
			},
			// An outage: the file's name is taken by a directory, so
			// opening it for append fails until it is given back.
			Outage: func(t testing.TB) func() {
				aside := path + ".aside"
				if err := os.Rename(path, aside); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				return func() {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(aside, path); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			},
		}
	})
}

func TestFileLinesAreCompactPayloads(t *testing.T) {
	dir := t.TempDir()
	d, err := sinks.Open(&dsl.Destination{Name: "audit", Type: "file", Settings: map[string]dsl.Setting{
		"path": {Text: filepath.Join(dir, "a.jsonl")},
	}}, sinks.OpenOptions{Dir: "/elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []diff.Message{
		{ID: "m1", UserID: "u1", Payload: []byte("{\n  \"messageId\": \"m1\",\n  \"userId\": \"u1\"\n}")},
		{ID: "m2", UserID: "u1", Payload: []byte(`{"messageId":"m2"`)}, // truncated: not JSON
		{ID: "m3", UserID: "u2", Payload: []byte(`{"messageId":"m3","n":1.50}`)},
	}
	err = d.Send(context.Background(), msgs)
	var be *sinks.BatchError
	if !asBatchError(err, &be) || sinks.Classify(be.Errs[0]) != sinks.Delivered ||
		sinks.Classify(be.Errs[1]) != sinks.Reject || sinks.Classify(be.Errs[2]) != sinks.Delivered {
		t.Fatalf("Send = %v; want m2 rejected, m1 and m3 delivered", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"messageId":"m1","userId":"u1"}` + "\n" + `{"messageId":"m3","n":1.50}` + "\n"
	if string(got) != want {
		t.Fatalf("file\n%s\nwant\n%s", got, want)
	}
}

func TestStdout(t *testing.T) {
	var out bytes.Buffer
	d, err := sinks.Open(&dsl.Destination{Name: "console", Type: "stdout"}, sinks.OpenOptions{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	ob := sinktest.NewOutbox()
	msgs := ob.Append("console", sinktest.Messages(sinktest.GenOptions{Profiles: 3, PerProfile: 3})...)
	st, err := sinks.Deliver(context.Background(), ob, "console", d, sinktest.FastOptions())
	if err != nil || st.Delivered != len(msgs) {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	sinktest.CheckReceived(t, msgs, readJSONL(t, out.Bytes()), msgs)
	if n := strings.Count(out.String(), "\n"); n != len(msgs) {
		t.Fatalf("%d lines, want %d", n, len(msgs))
	}
}

func TestOpenValidatesSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    dsl.Destination
		env  map[string]string
		want []string // substrings of the error
	}{
		{"unknown type", dsl.Destination{Name: "x", Type: "carrier_pigeon"}, nil, []string{`unknown type "carrier_pigeon"`, "kafka", "webhook"}},
		{"missing required", dsl.Destination{Name: "x", Type: "file"}, nil, []string{"destination x: path: required setting is missing"}},
		{"unknown key", dsl.Destination{Name: "x", Type: "stdout", Settings: map[string]dsl.Setting{"colour": {Text: "red"}}}, nil, []string{"colour: unknown setting for type stdout"}},
		{"literal secret", dsl.Destination{Name: "h", Type: "webhook", Settings: map[string]dsl.Setting{
			"url": {Text: "http://x"}, "secret": {Text: "hunter2"}}}, nil, []string{`secret: must be given as env("NAME")`}},
		{"env for a literal key", dsl.Destination{Name: "f", Type: "file", Settings: map[string]dsl.Setting{
			"path": {Secret: dsl.Secret{Env: "P"}}}}, nil, []string{"path: must be a literal"}},
		{"unset variable", dsl.Destination{Name: "h", Type: "webhook", Settings: map[string]dsl.Setting{
			"url": {Secret: dsl.Secret{Env: "HOOK_URL"}}}}, map[string]string{}, []string{"url: environment variable HOOK_URL is not set"}},
		{"every problem at once", dsl.Destination{Name: "k", Type: "kafka", Settings: map[string]dsl.Setting{
			"sasl_mechanism": {Text: "GSSAPI"}, "tls": {Text: "maybe"}}}, nil,
			[]string{"brokers: required", "topic: required", "sasl_mechanism: want one of", "tls: want true or false"}},
		{"bad webhook url", dsl.Destination{Name: "h", Type: "webhook", Settings: map[string]dsl.Setting{
			"url": {Text: "ftp://x"}}}, nil, []string{"url: want an http or https URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sinks.Open(&tc.d, sinks.OpenOptions{LookupEnv: env(tc.env)})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestDeliverOptionsFor(t *testing.T) {
	o, err := sinks.DeliverOptionsFor(&dsl.Destination{Name: "b", Type: "braze", Settings: map[string]dsl.Setting{
		"batch_size": {Text: "50"}, "rate_limit": {Text: "100"}, "max_event_bytes": {Text: "1024"}, "max_retries": {Text: "0"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if o.BatchSize != 50 || o.RateLimit != 100 || o.MaxEventBytes != 1024 || o.MaxRetries != sinks.NoRetries {
		t.Fatalf("%+v", o)
	}
	o, err = sinks.DeliverOptionsFor(&dsl.Destination{Name: "k", Type: "kafka", Settings: map[string]dsl.Setting{"rate_limit": {Text: "unlimited"}}})
	if err != nil || o.RateLimit != sinks.Unlimited {
		t.Fatalf("%+v, %v", o, err)
	}
	if _, err := sinks.DeliverOptionsFor(&dsl.Destination{Name: "k", Type: "kafka", Settings: map[string]dsl.Setting{"rate_limit": {Text: "fast"}}}); err == nil {
		t.Fatal("rate_limit fast accepted")
	}
}

func asBatchError(err error, be **sinks.BatchError) bool {
	b, ok := err.(*sinks.BatchError)
	if ok {
		*be = b
	}
	return ok
}

// A process killed inside write(2) leaves a torn last line (the crash suite
// found one): the next Send cuts it before appending, and keeps every whole
// line, whatever the size of the torn part.
func TestFileCutsATornLine(t *testing.T) {
	for _, torn := range []string{`{"messageId":"m2","tim`, strings.Repeat("x", 200<<10)} {
		dir := t.TempDir()
		path := filepath.Join(dir, "a.jsonl")
		whole := `{"messageId":"m1"}` + "\n"
		if err := os.WriteFile(path, []byte(whole+torn), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := sinks.Open(&dsl.Destination{Name: "audit", Type: "file", Settings: map[string]dsl.Setting{
			"path": {Text: path},
		}}, sinks.OpenOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		msgs := []diff.Message{{ID: "m2", UserID: "u1", Payload: []byte(`{"messageId":"m2"}`)}}
		if err := d.Send(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if ids := readJSONL(t, got); strings.Join(ids, ",") != "m1,m2" {
			t.Fatalf("torn %d bytes: lines %v, want m1,m2", len(torn), ids)
		}
	}
	// A file that is one torn line is emptied.
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jsonl")
	os.WriteFile(path, []byte(`{"messageId":"m0"`), 0o644)
	d, _ := sinks.Open(&dsl.Destination{Name: "audit", Type: "file", Settings: map[string]dsl.Setting{
		"path": {Text: path},
	}}, sinks.OpenOptions{Dir: dir})
	if err := d.Send(context.Background(), []diff.Message{{ID: "m1", Payload: []byte(`{"messageId":"m1"}`)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != `{"messageId":"m1"}`+"\n" {
		t.Fatalf("file %q", got)
	}
}
