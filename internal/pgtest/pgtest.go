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
	"net/url"
	"os"
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
