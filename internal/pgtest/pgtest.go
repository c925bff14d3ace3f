// Package pgtest gives tests a PostgreSQL database of their own on the
// test server: the one `make test` and .ci/run start with
// .ci/with-postgres.sh, whose DSN is in LINKAUD_TEST_PG_DSN.
//
// Without that variable the tests skip, saying how to get a server; with
// LINKAUD_REQUIRE_PG=1 (CI) they fail instead, so a CI run cannot pass
// without having run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable holding the test server's DSN.
const EnvDSN = "LINKAUD_TEST_PG_DSN"

// ServerDSN returns the test server's DSN, or skips (fails under
// LINKAUD_REQUIRE_PG=1) when there is none.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("LINKAUD_REQUIRE_PG") == "1" {
			t.Fatalf("%s is not set and LINKAUD_REQUIRE_PG=1: run the tests through .ci/with-postgres.sh", EnvDSN)
		}
		t.Skipf("no PostgreSQL server: %s is not set (make test starts one when PostgreSQL is installed)", EnvDSN)
	}
	return dsn
}

// NewDatabase creates an empty database on the test server and returns its
// DSN; the database is dropped when the test ends. Its default collation
// is ICU's en-US where the server has ICU ("a" sorts before "B"), as a
// user's database often has, so that a plan that forgot to pin byte
// order fails.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

// NewByteOrderDatabase is NewDatabase with the "C" collation, which
// compares text by its bytes: how Redshift, which has no locale
// collations, compares it.
func NewByteOrderDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, false)
}

func newDatabase(t testing.TB, icu bool) string {
	t.Helper()
	server := ServerDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: connecting to the test server: %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "linkaud_test_" + hex.EncodeToString(b)
	created := false
	if icu {
		_, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
		created = err == nil
	}
	if !created {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"); err != nil {
			t.Fatalf("pgtest: creating a database: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("pgtest: dropping %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: %s is not a URL: %v", EnvDSN, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Connect opens a connection to dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// ResetSchemas drops every schema but the system ones and empties public,
// so that a database can take the next test case's tables.
func ResetSchemas(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, `DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
  CREATE SCHEMA public;
END $$`)
	return err
}

// Server is a PostgreSQL server of a test's own, for tests that stop and
// start it (a server gone mid-stream): initdb into a temporary directory,
// listening on 127.0.0.1 on a free port, run as the postgres user when the
// test runs as root, as .ci/with-postgres.sh does.
type Server struct {
	// DSN connects to its postgres database as the superuser linkaud.
	DSN   string
	bin   string
	dir   string
	port  int
	runAs []string
}

// StartServer initialises and starts a server, stopped when the test
// ends; without PostgreSQL's programs the test skips (fails under
// LINKAUD_REQUIRE_PG=1).
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := findBin()
	if bin == "" {
		if os.Getenv("LINKAUD_REQUIRE_PG") == "1" {
			t.Fatal("PostgreSQL's programs (initdb, pg_ctl) are not installed and LINKAUD_REQUIRE_PG=1")
		}
		t.Skip("PostgreSQL's programs (initdb, pg_ctl) are not installed")
	}
	// Not t.TempDir: its parent is private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "linkaud-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		s.runAs = []string{"runuser", "-u", "postgres", "--"}
		if err := exec.Command("chown", "postgres", s.dir).Run(); err != nil {
			t.Skipf("cannot hand %s to the postgres user: %v", s.dir, err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, err := s.run("initdb", "-D", s.data(), "-U", "linkaud", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.DSN = fmt.Sprintf("postgres://linkaud@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.Start(t)
	t.Cleanup(func() { s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "stop") })
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	cmd := append(append([]string{}, s.runAs...), filepath.Join(s.bin, prog))
	c := exec.Command(cmd[0], append(cmd[1:], args...)...)
	return c.CombinedOutput()
}

// Start starts the server (again), waiting until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", s.port, s.dir)
	if out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server at once, as a crash would: sessions are cut off
// without a goodbye.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func findBin() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(r), "initdb")); err == nil {
				return filepath.Dir(r)
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	return ""
}
