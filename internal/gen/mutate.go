package gen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// MutateOptions configure Mutate.
type MutateOptions struct {
	// Dir is a workspace written by Generate (and possibly mutated
	// before); its data files are rewritten in place.
	Dir string
	// Percent is the share of rows, 0 to 100, that change in each table:
	// changed in place, removed or added (see Mutate). 0 leaves every file
	// untouched.
	Percent float64
	// Seed selects which rows change and how; the same files, seed and
	// percent give the same bytes.
	Seed int64
	// Logger receives progress per table. Default slog.Default().
	Logger *slog.Logger
}

// MutatedTable is what Mutate did to one table. Rows counts the rows after
// the mutation (Rows - Added + Removed were there before).
type MutatedTable struct {
	Name, File                    string
	Rows, Changed, Added, Removed int64
}

// MutateResult lists what Mutate did, table by table, in Generate's order.
type MutateResult struct {
	Tables []MutatedTable
}

// Mutate rewrites the Parquet files of the workspace in opts.Dir as the
// next hour's data would: about Percent% of the rows of each table change,
// are removed or are added. Balances flip between Outstanding and Paid,
// limits, statuses, tiers and types change, accounts and cards are closed
// (a closed account's cards go with it), new profiles, accounts, cards,
// subscriptions, transactions, households and pets appear, pets move in
// and out of households, profiles change plan, email (losing the accounts
// that matched the old one), household and lifetime value, memberships of
// the warehouse's audiences come and go, and new track events happen in
// the hour after the latest time in the data. A changed row keeps its key,
// so a differ sees a change, not a removal and an addition; new rows get
// keys no earlier row had.
//
// Every choice is hash(seed, salt, tag, key) in DuckDB SQL, the salt being
// derived from the input (its row counts and latest time), so the output
// is a function of (input files, seed, percent) and mutating again, with
// any seed, compounds: hour after hour. Each file is written to a temporary
// file beside it and renamed over it once every table is written, so a
// concurrent reader sees either the old or the new file of a table, never
// half of one.
func Mutate(ctx context.Context, opts MutateOptions) (*MutateResult, error) {
	if math.IsNaN(opts.Percent) || opts.Percent < 0 || opts.Percent > 100 {
		return nil, fmt.Errorf("gen: mutate: percent must be within 0..100, not %g", opts.Percent)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, WorkspaceFile)); err != nil {
		return nil, fmt.Errorf("gen: mutate: %s is not a generated workspace: %w", opts.Dir, err)
	}
	wh, err := executor.Open(ctx, &dsl.Warehouse{Type: "duckdb", Path: ":memory:"}, executor.Options{MaxConns: 1, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("gen: mutate: %w", err)
	}
	defer wh.Close()

	m := &mutation{opts: opts, p: opts.Percent / 100, wh: wh, rows: map[string]int64{}}
	for _, t := range mutTables {
		path := m.path(t.name)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("gen: mutate: %w", err)
		}
		n, err := m.count(ctx, fmt.Sprintf("SELECT count(*) FROM read_parquet(%s)", sqlString(path)))
		if err != nil {
			return nil, fmt.Errorf("gen: mutate: %s: %w", t.name, err)
		}
		m.rows[t.name] = n
	}
	res := &MutateResult{}
	if m.p == 0 {
		for _, t := range mutTables {
			res.Tables = append(res.Tables, MutatedTable{Name: t.name, File: "data/" + t.file, Rows: m.rows[t.name]})
		}
		return res, nil
	}
	if err := m.prepare(ctx); err != nil {
		return nil, fmt.Errorf("gen: mutate: %w", err)
	}
	var tmps []string
	defer func() {
		for _, f := range tmps {
			_ = os.Remove(f) // gone already once renamed
		}
	}()
	for _, t := range mutTables {
		start := time.Now()
		tmp := filepath.Join(opts.Dir, "data", "."+t.file+".mutate")
		tmps = append(tmps, tmp)
		mt, err := m.table(ctx, t, tmp)
		if err != nil {
			return nil, fmt.Errorf("gen: mutate: %s: %w", t.name, err)
		}
		if err := syncFile(tmp); err != nil {
			return nil, fmt.Errorf("gen: mutate: %w", err)
		}
		opts.Logger.Debug("gen: mutated table", "table", t.name, "rows", mt.Rows, "changed", mt.Changed,
			"added", mt.Added, "removed", mt.Removed, "took", time.Since(start))
		res.Tables = append(res.Tables, mt)
	}
	for i, t := range mutTables {
		if err := os.Rename(tmps[i], m.path(t.name)); err != nil {
			return nil, fmt.Errorf("gen: mutate: %w", err)
		}
	}
	if d, err := os.Open(filepath.Join(opts.Dir, "data")); err == nil {
		_ = d.Sync() // make the renames durable where the platform allows
		d.Close()
	}
	return res, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// mutTable describes how one table mutates. Shares are fractions of the
// mutation's percent: del of the existing rows are removed, chg changed,
// and add × the old row count are added; they sum to 1, so that about
// percent% of a table's rows are touched.
type mutTable struct {
	name, file    string
	key           string  // SQL expression of a row's identity
	del, chg, add float64 // shares of the percent
	// alsoDel is an extra removal condition (a closed parent's rows).
	alsoDel string
	// replace is the REPLACE list applied to changed rows: each entry is
	// "column" → expression over the old row and _v, a uniform draw that
	// picks among kinds of change.
	replace [][2]string
	// added is the name of the table holding the new rows ("" for none).
	added string
	// newKey is the key column new rows must not share with old ones.
	newKey string
}

// The tables, in Generate's order, and how their rows change. Every
// replacement differs from the old value, so Changed counts real changes.
var mutTables = []mutTable{
	{name: "ANALYTICS.PROFILES", file: "profiles.parquet", key: "segment_id", del: 0.02, chg: 0.90, add: 0.08,
		replace: [][2]string{
			{"plan", "CASE WHEN _v < 0.5 THEN rotate(plan, ['free', 'silver', 'gold', 'platinum'], _k) ELSE plan END"},
			{"email", "CASE WHEN _v >= 0.5 AND _v < 0.62 THEN 'moved.' || mh('email', _k) || '@example.com' ELSE email END"},
			// A move; to no household when the draw is the current one.
			{"household_id", "CASE WHEN _v >= 0.62 AND _v < 0.77 THEN nullif('h_' || mpick('hh', _k, hh_count()), household_id) ELSE household_id END"},
			{"ltv", "CASE WHEN _v >= 0.77 THEN money(ltv + 1 + mpick('ltv', _k, 2000)) ELSE ltv END"},
		}, added: "new_profiles", newKey: "segment_id"},
	{name: "BANK.ACCOUNTS", file: "accounts.parquet", key: "id", del: 0.10, chg: 0.70, add: 0.20,
		replace: [][2]string{
			{"status", "CASE WHEN _v < 0.45 THEN CASE WHEN status = 'open' THEN CASE WHEN mu('st', _k) < 0.6 THEN 'frozen' ELSE 'closed' END ELSE 'open' END ELSE status END"},
			{"max_limit", "CASE WHEN _v >= 0.45 AND _v < 0.8 THEN money(CASE WHEN max_limit > 6000 THEN max_limit - 500 * (1 + mpick('lim', _k, 10)) ELSE max_limit + 500 * (1 + mpick('lim', _k, 10)) END) ELSE max_limit END"},
			{"type", "CASE WHEN _v >= 0.8 THEN rotate(type, ['checking', 'savings', 'credit'], _k) ELSE type END"},
		}, added: "new_accounts", newKey: "id"},
	{name: "BANK.CREDIT_CARDS", file: "credit_cards.parquet", key: "id", del: 0.10, chg: 0.70, add: 0.20,
		alsoDel: "gone('BANK.ACCOUNTS', account_id)",
		replace: [][2]string{
			{"balance", "CASE WHEN _v < 0.6 THEN CASE WHEN balance = 'Outstanding' THEN 'Paid' ELSE 'Outstanding' END ELSE balance END"},
			{"credit_limit", "CASE WHEN _v >= 0.6 AND _v < 0.85 THEN money(CASE WHEN credit_limit > 5000 THEN credit_limit - 500 ELSE credit_limit + 500 END) ELSE credit_limit END"},
			{"due_date", "CASE WHEN _v >= 0.85 THEN due_date + 30 ELSE due_date END"},
		}, added: "new_cards", newKey: "id"},
	{name: "BANK.SUBSCRIPTIONS", file: "subscriptions.parquet", key: "id", del: 0.10, chg: 0.70, add: 0.20,
		alsoDel: "gone('BANK.ACCOUNTS', account_id)",
		replace: [][2]string{
			{"tier", "rotate(tier, ['Basic', 'Standard', 'Premium'], _k)"},
		}, added: "new_subs", newKey: "id"},
	{name: "BANK.TRANSACTIONS", file: "transactions.parquet", key: "id", del: 0.05, chg: 0.15, add: 0.80,
		replace: [][2]string{
			// A correction of the amount.
			{"amount", "money(CASE WHEN amount > 100 AND _v < 0.5 THEN amount - 1 - mpick('amt', _k, 50) ELSE amount + 1 + mpick('amt', _k, 200) END)"},
		}, added: "new_tx", newKey: "id"},
	{name: "HOME.HOUSEHOLDS", file: "households.parquet", key: "id", del: 0.02, chg: 0.90, add: 0.08,
		replace: [][2]string{
			{"size", "CASE WHEN _v < 0.7 THEN (1 + (size + mpick('size', _k, 5)) % 6)::INTEGER ELSE size END"},
			{"city", "CASE WHEN _v >= 0.7 THEN rotate(city, " + sqlList(cities) + ", _k) ELSE city END"},
		}, added: "new_households", newKey: "id"},
	{name: "HOME.PETS", file: "pets.parquet", key: "id", del: 0.10, chg: 0.60, add: 0.30,
		replace: [][2]string{
			// Tidying "Cat" into "cat" is a change too.
			{"type", "CASE WHEN _v < 0.6 THEN rotate(type, ['cat', 'dog', 'fish', 'bird', 'rabbit', 'Cat'], _k) ELSE type END"},
			{"name", "CASE WHEN _v >= 0.6 THEN rotate(name, " + sqlList(petNames) + ", _k) ELSE name END"},
		}, added: "new_pets", newKey: "id"},
	{name: "HOME.HOUSEHOLD_PETS", file: "household_pets.parquet", key: "household_id || '/' || pet_id", del: 0.30, add: 0.70,
		alsoDel: "gone('HOME.PETS', pet_id) OR gone('HOME.HOUSEHOLDS', household_id)", added: "new_links"},
	{name: "ANALYTICS.AUDIENCE_MEMBERSHIPS", file: "audience_memberships.parquet", key: "segment_id || '/' || audience_key", del: 0.50, add: 0.50,
		alsoDel: "gone('ANALYTICS.PROFILES', segment_id)", added: "new_memberships"},
	{name: "ANALYTICS.TRACKS", file: "tracks.parquet", key: "message_id", add: 1, added: "new_tracks", newKey: "message_id"},
}

func mutTableOf(name string) mutTable {
	for _, t := range mutTables {
		if t.name == name {
			return t
		}
	}
	panic("gen: no table " + name)
}

// mutation is one Mutate call's working set.
type mutation struct {
	opts MutateOptions
	p    float64
	wh   executor.Warehouse
	rows map[string]int64 // old row counts
}

func (m *mutation) path(table string) string {
	return filepath.Join(m.opts.Dir, "data", mutTableOf(table).file)
}

// old is the SQL reading a table's current file.
func (m *mutation) old(table string) string {
	return "read_parquet(" + sqlString(m.path(table)) + ")"
}

// delBelow is the draw under which an existing row of t is removed.
func (m *mutation) delBelow(t mutTable) float64 { return m.p * t.del }

// chgBelow is the draw under which a row not removed is changed.
func (m *mutation) chgBelow(t mutTable) float64 { return m.p * (t.del + t.chg) }

// target is the number of rows to add to t.
func (m *mutation) target(t string) float64 {
	return m.p * mutTableOf(t).add * float64(m.rows[t])
}

// rate spreads n new rows over parents rows: the mean number per parent.
func rate(n float64, parents int64) float64 {
	if parents <= 0 || n <= 0 {
		return 0
	}
	return n / float64(parents)
}

func (m *mutation) exec(ctx context.Context, sql string) error {
	_, err := run(ctx, m.wh, sql)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, sql)
	}
	return nil
}

func (m *mutation) count(ctx context.Context, sql string) (int64, error) {
	return run(ctx, m.wh, sql)
}

// prepare defines the helpers and computes the new rows of every table
// (small: percent% of a table) before any file is written, so every table
// reads the old files only.
func (m *mutation) prepare(ctx context.Context) error {
	// The hour the new data falls in: the one after the latest time seen.
	var hour time.Time
	{
		q := fmt.Sprintf(`SELECT epoch(date_trunc('hour', greatest(
			(SELECT max("timestamp") FROM %s), (SELECT max(created_at) FROM %s),
			(SELECT max(opened_at) FROM %s), (SELECT max(created_at) FROM %s))) + INTERVAL 1 HOUR)::BIGINT`,
			m.old("ANALYTICS.TRACKS"), m.old("BANK.TRANSACTIONS"), m.old("BANK.ACCOUNTS"), m.old("ANALYTICS.PROFILES"))
		sec, err := m.count(ctx, q)
		if err != nil {
			return err
		}
		hour = time.Unix(sec, 0).UTC()
	}
	var total int64
	for _, n := range m.rows {
		total += n
	}
	// The salt makes a second mutation with the same seed choose afresh.
	salt := fmt.Sprintf("%d.%d", total, hour.Unix())
	seed := m.opts.Seed
	stmts := []string{
		fmt.Sprintf("CREATE MACRO mu(tag, k) AS ((hash(%d, %s, tag, k) %% 1000000007)::DOUBLE + 0.5) / 1000000007.0", seed, sqlString(salt)),
		fmt.Sprintf("CREATE MACRO mpick(tag, k, n) AS (hash(%d, %s, tag, k) %% greatest(n, 1)::UBIGINT)::BIGINT", seed, sqlString(salt)),
		// A short unique-looking id part.
		fmt.Sprintf("CREATE MACRO mh(tag, k) AS 'm' || hash(%d, %s, 'id', tag, k)::VARCHAR", seed, sqlString(salt)),
		"CREATE MACRO money(x) AS round(x, 2)::DECIMAL(12, 2)",
		// The table's uniform draw for a row: NULL keys never change.
		"CREATE MACRO draw(t, k) AS CASE WHEN k IS NULL THEN 2.0 ELSE mu(t, k) END",
		// A value of list other than v.
		"CREATE MACRO rotate(v, list, k) AS list_filter(list, x -> x IS DISTINCT FROM v)[1 + mpick('rot', k, len(list_filter(list, x -> x IS DISTINCT FROM v)))]",
		// How many new rows a parent gets for a mean of r.
		"CREATE MACRO nnew(tag, k, r) AS (floor(r) + CASE WHEN mu(tag, k) < r - floor(r) THEN 1 ELSE 0 END)::BIGINT",
		"CREATE MACRO hour_start() AS TIMESTAMP " + sqlString(hour.Format("2006-01-02 15:04:05")),
		"CREATE MACRO in_hour(tag, k) AS hour_start() + to_seconds(mpick(tag, k, 3600))",
		fmt.Sprintf("CREATE MACRO hh_count() AS %d", max(1, m.rows["HOME.HOUSEHOLDS"])),
	}
	// gone(t, key): the row of t with that key is removed by this mutation.
	var gone strings.Builder
	gone.WriteString("CREATE MACRO gone(t, k) AS CASE")
	for _, t := range mutTables {
		if t.del > 0 {
			fmt.Fprintf(&gone, " WHEN t = %s THEN draw(%s, k) < %v", sqlString(t.name), sqlString(t.name), m.delBelow(t))
		}
	}
	gone.WriteString(" ELSE false END")
	stmts = append(stmts, gone.String())
	for _, s := range stmts {
		if err := m.exec(ctx, s); err != nil {
			return err
		}
	}

	newProfiles := int64(math.Round(m.target("ANALYTICS.PROFILES")))
	newHouseholds := int64(math.Round(m.target("HOME.HOUSEHOLDS")))
	live := func(table, key string) string {
		return fmt.Sprintf("SELECT * FROM %s WHERE %s IS NOT NULL AND NOT gone(%s, %s)", m.old(table), key, sqlString(table), key)
	}
	tables := []string{
		// New profiles, each with one new account below.
		fmt.Sprintf(`CREATE TABLE new_profiles AS
			SELECT 'u_' || mh('profile', k) AS segment_id,
			       %[2]s[1 + mpick('fn', k, %[3]d)] AS first_name, %[4]s[1 + mpick('ln', k, %[5]d)] AS last_name,
			       'new.' || mh('email', 'p' || k) || '@example.com' AS email,
			       CASE WHEN mu('hh.null', k) < 0.1 THEN NULL ELSE 'h_' || mpick('hh', k, hh_count()) END AS household_id,
			       ['free', 'silver', 'gold', 'platinum'][1 + mpick('plan', k, 4)] AS plan,
			       money(100 + mpick('ltv', k, 9000)) AS ltv,
			       in_hour('created', k) AS created_at
			FROM range(%[1]d) t(k)`, newProfiles, sqlList(firstNames), len(firstNames), sqlList(lastNames), len(lastNames)),
		fmt.Sprintf(`CREATE TABLE new_accounts AS
			WITH owners AS (
				SELECT email, segment_id AS k, nnew('acc.n', segment_id, %[2]v) AS n FROM (%[1]s) WHERE email IS NOT NULL
				UNION ALL
				SELECT email, segment_id, 1 FROM new_profiles)
			SELECT 'a_' || mh('account', k || '/' || i) AS id, email,
			       ['checking', 'savings', 'credit'][1 + mpick('type', k || '/' || i, 3)] AS type,
			       'open' AS status, in_hour('opened', k || '/' || i) AS opened_at,
			       money(1000 + mpick('maxlim', k || '/' || i, 19000)) AS max_limit
			FROM (SELECT email, k, unnest(range(n)) AS i FROM owners)`,
			live("ANALYTICS.PROFILES", "segment_id"),
			rate(m.target("BANK.ACCOUNTS")-float64(newProfiles), m.rows["ANALYTICS.PROFILES"])),
	}
	parents := func(table, key string) string {
		return fmt.Sprintf("SELECT %s AS k FROM (%s) UNION ALL SELECT id FROM ", key, live(table, key))
	}
	accounts := m.rows["BANK.ACCOUNTS"]
	tables = append(tables,
		fmt.Sprintf(`CREATE TABLE new_cards AS
			SELECT 'cc_' || mh('card', k || '/' || i) AS id, k AS account_id,
			       CASE WHEN mu('bal', k || '/' || i) < 0.5 THEN 'Outstanding' ELSE 'Paid' END AS balance,
			       (hour_start()::DATE + 30)::DATE AS due_date,
			       money(500 * (1 + mpick('climit', k || '/' || i, 40))) AS credit_limit
			FROM (SELECT k, unnest(range(nnew('cc.n', k, %[2]v))) AS i FROM (%[1]snew_accounts))`,
			parents("BANK.ACCOUNTS", "id"), rate(m.target("BANK.CREDIT_CARDS"), accounts)),
		fmt.Sprintf(`CREATE TABLE new_subs AS
			SELECT 's_' || mh('sub', k || '/' || i) AS id, k AS account_id,
			       ['Basic', 'Standard', 'Premium'][1 + mpick('tier', k || '/' || i, 3)] AS tier,
			       in_hour('started', k || '/' || i) AS started_at
			FROM (SELECT k, unnest(range(nnew('sub.n', k, %[2]v))) AS i FROM (%[1]snew_accounts))`,
			parents("BANK.ACCOUNTS", "id"), rate(m.target("BANK.SUBSCRIPTIONS"), accounts)),
		// Half the new transactions on cards, half on subscriptions.
		fmt.Sprintf(`CREATE TABLE new_tx AS
			SELECT 't_' || mh('tx', k || '/' || i) AS id, k AS card_id, NULL::VARCHAR AS subscription_id,
			       money(1 + mpick('amt', k || '/' || i, 30000) / 100) AS amount, in_hour('tx.at', k || '/' || i) AS created_at
			FROM (SELECT k, unnest(range(nnew('tx.c', k, %[2]v))) AS i FROM (%[1]snew_cards))
			UNION ALL
			SELECT 't_' || mh('tx', k || '/' || i), NULL, k,
			       money(5 + mpick('amt', k || '/' || i, 30000) / 100), in_hour('tx.at', k || '/' || i)
			FROM (SELECT k, unnest(range(nnew('tx.s', k, %[4]v))) AS i FROM (%[3]snew_subs))`,
			parents("BANK.CREDIT_CARDS", "id"), rate(m.target("BANK.TRANSACTIONS")/2, m.rows["BANK.CREDIT_CARDS"]),
			parents("BANK.SUBSCRIPTIONS", "id"), rate(m.target("BANK.TRANSACTIONS")/2, m.rows["BANK.SUBSCRIPTIONS"])),
		fmt.Sprintf(`CREATE TABLE new_households AS
			SELECT 'h_' || mh('household', k) AS id, %[2]s[1 + mpick('city', k, %[3]d)] AS city, (1 + mpick('hsize', k, 6))::INTEGER AS size
			FROM range(%[1]d) t(k)`, newHouseholds, sqlList(cities), len(cities)),
		// New pets, each in the household that adopted it.
		fmt.Sprintf(`CREATE TABLE new_pets AS
			SELECT 'pet_' || mh('pet', k || '/' || i) AS id, k AS household_id,
			       ['cat', 'dog', 'fish', 'bird', 'rabbit'][1 + mpick('pet.type', k || '/' || i, 5)] AS type,
			       %[3]s[1 + mpick('petname', k || '/' || i, %[4]d)] AS name,
			       hour_start()::DATE - mpick('born', k || '/' || i, 365)::INTEGER AS born
			FROM (SELECT k, unnest(range(nnew('pet.n', k, %[2]v))) AS i FROM (%[1]snew_households))`,
			parents("HOME.HOUSEHOLDS", "id"), rate(m.target("HOME.PETS"), m.rows["HOME.HOUSEHOLDS"]),
			sqlList(petNames), len(petNames)),
		// The new pets' links, and existing pets taken in by another
		// household.
		fmt.Sprintf(`CREATE TABLE new_links AS
			SELECT household_id, id AS pet_id FROM new_pets
			UNION ALL
			SELECT 'h_' || mpick('adopt.h', id || '/' || i, hh_count()), id
			FROM (SELECT id, unnest(range(nnew('adopt', id, %[2]v))) AS i FROM (%[1]s))`,
			live("HOME.PETS", "id"), rate(max(0, m.target("HOME.HOUSEHOLD_PETS")-m.target("HOME.PETS")), m.rows["HOME.PETS"])),
		fmt.Sprintf(`CREATE TABLE new_memberships AS
			SELECT segment_id, CASE WHEN mu('m.aud', segment_id) < 0.7 THEN 'platinum_tier' ELSE 'churned' END AS audience_key
			FROM (SELECT segment_id FROM (%[1]s) UNION ALL SELECT segment_id FROM new_profiles)
			WHERE mu('m.add', segment_id) < %[2]v`,
			live("ANALYTICS.PROFILES", "segment_id"), rate(m.target("ANALYTICS.AUDIENCE_MEMBERSHIPS"), m.rows["ANALYTICS.PROFILES"])),
		// The hour's track events, of the profiles active in it.
		fmt.Sprintf(`CREATE TABLE new_tracks AS
			SELECT 'e_' || mh('event', k || '/' || i) AS message_id, k AS user_id, event,
			       in_hour('ev.at', k || '/' || i) AS "timestamp",
			       CASE WHEN event = 'Order Completed' THEN money(5 + mpick('ev.total', k || '/' || i, 20000) / 100) END AS total
			FROM (SELECT k, i, %[3]s AS event
			      FROM (SELECT k, unnest(range(nnew('ev.n', k, %[2]v))) AS i
			            FROM (SELECT segment_id AS k FROM (%[1]s) UNION ALL SELECT segment_id FROM new_profiles)))`,
			live("ANALYTICS.PROFILES", "segment_id"), rate(m.target("ANALYTICS.TRACKS"), m.rows["ANALYTICS.PROFILES"]),
			weightedBy("mu", "ev.name", "k || '/' || i", "'Order Completed'", 0.35, "'Product Viewed'", 0.35, "'Signed In'", 0.2, "'Cart Viewed'")),
	)
	for _, s := range tables {
		if err := m.exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// table writes t's mutated file to tmp and counts what changed.
func (m *mutation) table(ctx context.Context, t mutTable, tmp string) (MutatedTable, error) {
	mt := MutatedTable{Name: t.name, File: "data/" + t.file}
	key := "(" + t.key + ")"
	del := fmt.Sprintf("_r < %v", m.delBelow(t))
	if t.alsoDel != "" {
		del = "(" + del + " OR " + t.alsoDel + ")"
	}
	chg := fmt.Sprintf("_r < %v", m.chgBelow(t))
	drawn := fmt.Sprintf("SELECT *, draw(%s, %s) AS _r FROM %s", sqlString(t.name), key, m.old(t.name))

	if t.del > 0 || t.alsoDel != "" || len(t.replace) > 0 {
		// One pass over the old rows, reading the columns the decisions
		// need; the draws are recomputed by the COPY below (cheaper than
		// keeping them).
		q := fmt.Sprintf("SELECT count(*) FILTER (WHERE %s), count(*) FILTER (WHERE NOT %s AND %s) FROM (%s)", del, del, chg, drawn)
		rr, err := m.wh.Query(ctx, q, executor.QueryOptions{Tag: "gen"})
		if err != nil {
			return mt, err
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			if rec.NumRows() == 1 {
				mt.Removed = rec.Column(0).(*array.Int64).Value(0)
				if len(t.replace) > 0 {
					mt.Changed = rec.Column(1).(*array.Int64).Value(0)
				}
			}
		}
		err = rr.Err()
		rr.Release()
		if err != nil {
			return mt, err
		}
	}

	var sel strings.Builder
	sel.WriteString("SELECT * EXCLUDE (_r)")
	if len(t.replace) > 0 {
		// _k is the row's key and _v a draw choosing the kind of change,
		// computed for the changed rows only.
		sub := strings.NewReplacer("_k", key, "_v", "mu('what', "+key+")")
		sel.WriteString(" REPLACE (")
		for i, r := range t.replace {
			if i > 0 {
				sel.WriteString(", ")
			}
			fmt.Fprintf(&sel, "CASE WHEN %s THEN %s ELSE %s END AS %s", chg, sub.Replace(r[1]), r[0], r[0])
		}
		sel.WriteString(")")
	}
	fmt.Fprintf(&sel, " FROM (%s) WHERE NOT %s", drawn, del)
	if t.added != "" {
		cols := "*"
		if t.name == "HOME.PETS" {
			cols = "* EXCLUDE (household_id)"
		}
		if col := t.newKey; col != "" {
			// New keys are hashes: a clash with an existing key is
			// unlikely, and made impossible here. The old file is the
			// probe side, the few new rows the hash table.
			clash, err := m.count(ctx, fmt.Sprintf("SELECT count(*) FROM %s SEMI JOIN %s USING (%s)", m.old(t.name), t.added, col))
			if err != nil {
				return mt, err
			}
			if clash > 0 {
				if err := m.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %[2]s FROM %s)", t.added, col, m.old(t.name))); err != nil {
					return mt, err
				}
			}
		}
		fmt.Fprintf(&sel, " UNION ALL SELECT %s FROM %s", cols, t.added)
	}
	written, err := m.count(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", sel.String(), sqlString(tmp)))
	if err != nil {
		return mt, fmt.Errorf("%w\n%s", err, sel.String())
	}
	mt.Rows = written
	mt.Added = written - (m.rows[t.name] - mt.Removed)
	return mt, nil
}
