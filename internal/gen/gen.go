// Package gen writes a synthetic bank + household workspace of any size:
// Parquet files for every table of DESIGN.md's data graph and a
// workspace.la that loads them, declares that graph and the seed's three
// audiences. Entry points: Generate, and Mutate, which rewrites such a
// workspace's files as the next hour's data would. `linkaud gen`, the
// benchmarks and the crash suite use them.
//
// The rows are computed by DuckDB SQL over range(): every random choice is
// hash(seed, tag, index), so the output is a function of (seed, profiles,
// anchor date) for a given DuckDB version, and a million profiles take
// seconds. Timestamps lie before the anchor date (default: today, UTC) so
// that `within N days` conditions find members whenever the data is made.
//
// The data is meant to be awkward in the ways real warehouses are: NULL
// emails and keys, profiles without accounts, accounts whose email matches
// no profile, cards and junction rows pointing at missing rows, a junction
// row listed twice, pets shared by two households, "Cat" next to "cat",
// memberships and events of unknown users, names in many scripts with
// quotes and backslashes in them.
package gen

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// Options configure Generate.
type Options struct {
	// Profiles is the number of profiles with a key (required, > 0). About
	// one in a thousand more rows without a key are added.
	Profiles int
	// Out is the workspace directory; created if missing. Files it holds
	// with the names Generate writes are replaced.
	Out string
	// Seed selects the data; the same seed, size and anchor give the same
	// rows.
	Seed int64
	// Anchor is the date the data is relative to (times are before it).
	// Default: today, UTC.
	Anchor time.Time
	// Logger receives progress per table. Default slog.Default().
	Logger *slog.Logger
	// Audiences adds that many generated audiences (gen_0001, …) to the
	// seed's three, varied over the graph's paths, quantifiers and
	// thresholds, each scheduled every 15 minutes: the many-audiences
	// benchmark's workload.
	Audiences int
}

// Table is one generated table.
type Table struct {
	Name string // warehouse name, e.g. "BANK.ACCOUNTS"
	File string // relative to Out, e.g. "data/accounts.parquet"
	Rows int64
}

// Result lists what Generate wrote.
type Result struct {
	Tables    []Table
	Workspace string // path of workspace.la
	Anchor    time.Time
}

// WorkspaceFile is the name of the workspace file Generate writes.
const WorkspaceFile = "workspace.la"

// Generate writes the data files and workspace.la into opts.Out.
func Generate(ctx context.Context, opts Options) (*Result, error) {
	if opts.Profiles <= 0 {
		return nil, fmt.Errorf("gen: profiles must be positive, not %d", opts.Profiles)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Anchor.IsZero() {
		opts.Anchor = time.Now().UTC()
	}
	anchor := time.Date(opts.Anchor.Year(), opts.Anchor.Month(), opts.Anchor.Day(), 0, 0, 0, 0, time.UTC)
	dataDir := filepath.Join(opts.Out, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	wh, err := executor.Open(ctx, &dsl.Warehouse{Type: "duckdb", Path: ":memory:"}, executor.Options{MaxConns: 1, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	defer wh.Close()

	s := newSizes(opts.Profiles)
	for _, stmt := range macros(opts.Seed, anchor, s) {
		if _, err := run(ctx, wh, stmt); err != nil {
			return nil, fmt.Errorf("gen: %w", err)
		}
	}
	res := &Result{Anchor: anchor}
	for _, t := range tables(s) {
		start := time.Now()
		file := filepath.Join(dataDir, t.file)
		copySQL := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", t.query, sqlString(file))
		n, err := run(ctx, wh, copySQL)
		if err != nil {
			return nil, fmt.Errorf("gen: %s: %w", t.name, err)
		}
		opts.Logger.Debug("gen: wrote table", "table", t.name, "rows", n, "took", time.Since(start))
		res.Tables = append(res.Tables, Table{Name: t.name, File: "data/" + t.file, Rows: n})
	}
	res.Workspace = filepath.Join(opts.Out, WorkspaceFile)
	if err := os.WriteFile(res.Workspace, []byte(workspaceText(opts, anchor, res.Tables)), 0o644); err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	return res, nil
}

// run executes a statement and returns the first cell of its result as a
// count (COPY's row count), or 0.
func run(ctx context.Context, wh executor.Warehouse, sql string) (int64, error) {
	rr, err := wh.Query(ctx, sql, executor.QueryOptions{Tag: "gen"})
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if rec.NumRows() > 0 && rec.NumCols() > 0 {
			if c, ok := rec.Column(0).(*array.Int64); ok {
				n = c.Value(0)
			}
		}
	}
	return n, rr.Err()
}

// sizes are the table sizes derived from the number of profiles.
type sizes struct {
	profiles   int64
	keyless    int64 // extra profile rows with a NULL key
	width      int   // digits of a profile number
	households int64
	orphanAccs int64
	unknown    int64 // unknown users in memberships and events
}

func newSizes(n int) sizes {
	p := int64(n)
	return sizes{
		profiles:   p,
		keyless:    max(1, p/1000),
		width:      len(strconv.FormatInt(max(p-1, 0), 10)),
		households: max(1, (p+1)/2),
		orphanAccs: max(1, p*3/100),
		unknown:    max(1, p/100),
	}
}

// sqlString is a DuckDB string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = sqlString(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Names in many scripts, with the characters that break naive quoting.
var (
	firstNames = []string{"Zoë", "José", "Łukasz", "Ana", "Mohammed", "Li", "Aoife", "Søren", "Chloé", "Ngozi",
		"Björn", "Priya", "John", "Mary", "Αλέξανδρος", "Мария", "美咲", "François", "Dvořák", "Ólafur", "Kai", "Amélie"}
	lastNames = []string{"O'Brien", "Müller", "Nguyễn", "山田", "Ødegaard", "Smith-Jones", "García", "Kowalski",
		"Anderson", "Đorđević", "Papadopoulos", "D'Angelo", "Ivanova", "Lee", "Schröder", `Back\slash`, "Okafor", "Singh"}
	cities = []string{"São Paulo", "Zürich", "Kraków", "Tōkyō", "Coeur d'Alene", "Reykjavík", "Lagos", "Montréal",
		"München", "Seattle", "Αθήνα", "Ciudad de México"}
	petNames = []string{"Mochi", "Rex", "Ñoño", "Luna", "Bello", "Mittens", "Pelé", "Simba", "Kiki", "Olly", "Tüpfel", "O'Malley"}
)

// weighted is a CASE over u(tag, idx) choosing among SQL values by weight;
// weights need not sum to 1: the rest is the last value.
func weighted(tag, idx string, choices ...any) string {
	return weightedBy("u", tag, idx, choices...)
}

// weightedBy is weighted over the uniform macro fn.
func weightedBy(fn, tag, idx string, choices ...any) string {
	var b strings.Builder
	b.WriteString("CASE")
	acc := 0.0
	for i := 0; i+1 < len(choices); i += 2 {
		acc += choices[i+1].(float64)
		fmt.Fprintf(&b, " WHEN %s(%s, %s) < %g THEN %s", fn, sqlString(tag), idx, acc, choices[i].(string))
	}
	fmt.Fprintf(&b, " ELSE %s END", choices[len(choices)-1].(string))
	return b.String()
}

// macros define the pseudo-random helpers and the per-row formulas tables
// share (a child recomputes its parent's attributes instead of joining).
func macros(seed int64, anchor time.Time, s sizes) []string {
	anchorTS := "TIMESTAMP " + sqlString(anchor.Format("2006-01-02 15:04:05"))
	return []string{
		// Uniform in (0, 1), and an integer in [0, n).
		fmt.Sprintf("CREATE MACRO u(tag, i) AS ((hash(%d, tag, i) %% 1000000007)::DOUBLE + 0.5) / 1000000007.0", seed),
		fmt.Sprintf("CREATE MACRO pick(tag, i, n) AS (hash(%d, tag, i) %% (n)::UBIGINT)::BIGINT", seed),
		// Log-normal around median (Box–Muller).
		"CREATE MACRO lognormal(tag, i, median, sigma) AS median * exp(sigma * sqrt(-2 * ln(u(tag || '.1', i))) * cos(2 * pi() * u(tag || '.2', i)))",
		"CREATE MACRO money(x) AS round(x, 2)::DECIMAL(12, 2)",
		"CREATE MACRO anchor() AS " + anchorTS,
		// Profiles: about 8% are engaged customers, who make the seed's
		// audiences non-empty at any size.
		"CREATE MACRO eng(i) AS u('eng', i) < 0.08",
		fmt.Sprintf("CREATE MACRO profile_key(i) AS 'u_' || lpad(i::VARCHAR, %d, '0')", s.width),
		fmt.Sprintf("CREATE MACRO first_name(i) AS %s[1 + pick('fn', i, %d)]", sqlList(firstNames), len(firstNames)),
		fmt.Sprintf("CREATE MACRO last_name(i) AS %s[1 + pick('ln', i, %d)]", sqlList(lastNames), len(lastNames)),
		// 2% without an email; 0.5% share the previous profile's.
		"CREATE MACRO email_base(i) AS lower(first_name(i)) || '.' || i || '@example.com'",
		"CREATE MACRO email_of(i) AS CASE WHEN u('email.null', i) < 0.02 THEN NULL " +
			"WHEN i > 0 AND u('email.dup', i) < 0.005 THEN email_base(i - 1) ELSE email_base(i) END",
		"CREATE MACRO plan_of(i) AS CASE WHEN eng(i) THEN " +
			weighted("plan.eng", "i", "'platinum'", 0.45, "'gold'", 0.35, "'silver'") + " ELSE " +
			weighted("plan", "i", "'free'", 0.40, "'silver'", 0.30, "'gold'", 0.15, "'platinum'", 0.07, "NULL") + " END",
		// Accounts: profile i owns accounts 4i .. 4i+n-1.
		"CREATE MACRO n_accounts(i) AS CASE WHEN eng(i) THEN 1 + pick('nacc', i, 2) ELSE [0, 1, 1, 1, 2, 2, 3][1 + pick('nacc', i, 7)] END",
		// Cards: account a owns cards 3a .. 3a+n-1; subscriptions 2a .. 2a+n-1.
		"CREATE MACRO n_cards(a) AS [0, 0, 1, 1, 1, 2, 3][1 + pick('ncc', a, 7)]",
		"CREATE MACRO n_subs(a) AS CASE WHEN eng(a // 4) THEN 1 + pick('nsub', a, 2) ELSE [0, 0, 0, 1, 1, 2][1 + pick('nsub', a, 6)] END",
		"CREATE MACRO n_sub_tx(s) AS CASE WHEN eng(s // 8) THEN 6 + pick('nstx', s, 10) ELSE pick('nstx', s, 7) END",
		"CREATE MACRO n_card_tx(c) AS pick('nctx', c, 13)",
		"CREATE MACRO n_pets(h) AS [0, 0, 0, 1, 1, 2, 3][1 + pick('npet', h, 7)]",
		"CREATE MACRO n_events(i) AS CASE WHEN eng(i) THEN 10 + pick('nev', i, 21) ELSE pick('nev', i, 7) END",
	}
}

type tableSpec struct {
	name, file, query string
}

func tables(s sizes) []tableSpec {
	n, h := s.profiles, s.households
	return []tableSpec{
		{"ANALYTICS.PROFILES", "profiles.parquet", fmt.Sprintf(`
			SELECT profile_key(i) AS segment_id,
			       first_name(i) AS first_name, last_name(i) AS last_name,
			       email_of(i) AS email,
			       CASE WHEN u('hh.null', i) < 0.05 THEN NULL
			            WHEN u('hh.missing', i) < 0.01 THEN 'h_missing_' || i
			            ELSE 'h_' || pick('hh', i, %[2]d) END AS household_id,
			       plan_of(i) AS plan,
			       money(lognormal('ltv', i, CASE WHEN eng(i) THEN 6000 ELSE 900 END, 0.9)) AS ltv,
			       anchor() - to_seconds(pick('created', i, 1500 * 86400)) AS created_at
			FROM range(%[1]d) t(i)
			UNION ALL
			SELECT NULL, first_name(i), last_name(i), 'nokey.' || i || '@example.org', NULL, 'free', 0, anchor()
			FROM range(%[1]d, %[1]d + %[3]d) t(i)`, n, h, s.keyless)},

		{"BANK.ACCOUNTS", "accounts.parquet", fmt.Sprintf(`
			SELECT 'a_' || a AS id, email_of(i) AS email,
			       %[2]s AS type,
			       CASE WHEN eng(i) THEN %[3]s ELSE %[4]s END AS status,
			       anchor() - to_seconds(CASE WHEN eng(i) THEN pick('opened', a, 330 * 86400)
			                                  ELSE pick('opened', a, 1500 * 86400) END) AS opened_at,
			       money(1000 + pick('maxlim', a, 19000)) AS max_limit
			FROM (SELECT i, 4 * i + unnest(range(n_accounts(i))) AS a FROM range(%[1]d) t(i))
			UNION ALL
			SELECT 'a_o' || k, 'nobody.' || k || '@example.net', 'checking', 'open', anchor() - INTERVAL 10 DAY, money(5000)
			FROM range(%[5]d) t(k)`,
			n,
			weighted("acct.type", "a", "'checking'", 0.5, "'savings'", 0.3, "'credit'"),
			weighted("acct.status.eng", "a", "'open'", 0.97, "'frozen'"),
			weighted("acct.status", "a", "'open'", 0.85, "'closed'", 0.10, "'frozen'"),
			s.orphanAccs)},

		{"BANK.CREDIT_CARDS", "credit_cards.parquet", fmt.Sprintf(`
			SELECT 'cc_' || c AS id,
			       CASE WHEN u('cc.orphan', c) < 0.01 THEN 'a_missing_' || c ELSE 'a_' || a END AS account_id,
			       %[2]s AS balance,
			       (anchor()::DATE + (pick('due', c, 60)::INTEGER - 15)) AS due_date,
			       money(500 * (1 + pick('climit', c, 40))) AS credit_limit
			FROM (SELECT a, 3 * a + unnest(range(n_cards(a))) AS c
			      FROM (SELECT 4 * i + unnest(range(n_accounts(i))) AS a FROM range(%[1]d) t(i)))`,
			n, weighted("balance", "c", "'Outstanding'", 0.40, "'Paid'", 0.55, "NULL"))},

		{"BANK.SUBSCRIPTIONS", "subscriptions.parquet", fmt.Sprintf(`
			SELECT 's_' || s AS id, 'a_' || a AS account_id,
			       CASE WHEN eng(a // 4) THEN %[2]s ELSE %[3]s END AS tier,
			       anchor() - to_seconds(pick('started', s, 900 * 86400)) AS started_at
			FROM (SELECT a, 2 * a + unnest(range(n_subs(a))) AS s
			      FROM (SELECT 4 * i + unnest(range(n_accounts(i))) AS a FROM range(%[1]d) t(i)))`,
			n,
			weighted("tier.eng", "s", "'Premium'", 0.70, "'Standard'", 0.20, "'Basic'"),
			weighted("tier", "s", "'Basic'", 0.45, "'Standard'", 0.30, "'Premium'"))},

		{"BANK.TRANSACTIONS", "transactions.parquet", fmt.Sprintf(`
			WITH accounts AS (SELECT 4 * i + unnest(range(n_accounts(i))) AS a FROM range(%[1]d) t(i)),
			cards AS (SELECT 3 * a + unnest(range(n_cards(a))) AS c FROM accounts),
			subs AS (SELECT a, 2 * a + unnest(range(n_subs(a))) AS s FROM accounts)
			SELECT 't_c' || c || '_' || k AS id,
			       CASE WHEN u('tx.orphan', c * 16 + k) < 0.005 THEN 'cc_missing' ELSE 'cc_' || c END AS card_id,
			       NULL::VARCHAR AS subscription_id,
			       money(lognormal('tx.amount', c * 16 + k, 40, 1.0)) AS amount,
			       anchor() - to_seconds(pick('tx.at', c * 16 + k, 400 * 86400)) AS created_at
			FROM (SELECT c, unnest(range(n_card_tx(c))) AS k FROM cards)
			UNION ALL
			SELECT 't_s' || s || '_' || k,
			       -- subscriptions billed to the account's first card, when it has one
			       CASE WHEN n_cards(a) > 0 AND u('stx.card', s * 16 + k) < 0.3 THEN 'cc_' || (3 * a) END,
			       's_' || s,
			       money(CASE WHEN eng(a // 4) THEN lognormal('stx.amount', s * 16 + k, 150, 0.6)
			                  ELSE lognormal('stx.amount', s * 16 + k, 50, 0.8) END),
			       anchor() - to_seconds(pick('stx.at', s * 16 + k, 400 * 86400))
			FROM (SELECT a, s, unnest(range(n_sub_tx(s))) AS k FROM subs)`, n)},

		{"HOME.HOUSEHOLDS", "households.parquet", fmt.Sprintf(`
			SELECT 'h_' || j AS id, %[2]s[1 + pick('city', j, %[3]d)] AS city, 1 + pick('hsize', j, 6)::INTEGER AS size
			FROM range(%[1]d) t(j)`, h, sqlList(cities), len(cities))},

		{"HOME.PETS", "pets.parquet", fmt.Sprintf(`
			SELECT 'pet_' || p AS id, %[2]s AS type,
			       %[3]s[1 + pick('petname', p, %[4]d)] AS name,
			       (anchor()::DATE - pick('born', p, 15 * 365)::INTEGER) AS born
			FROM (SELECT 4 * j + unnest(range(n_pets(j))) AS p FROM range(%[1]d) t(j))`,
			h, weighted("pet.type", "p", "'cat'", 0.35, "'dog'", 0.38, "'fish'", 0.10, "'bird'", 0.08, "'rabbit'", 0.05, "'Cat'", 0.02, "NULL"),
			sqlList(petNames), len(petNames))},

		{"HOME.HOUSEHOLD_PETS", "household_pets.parquet", fmt.Sprintf(`
			WITH owned AS (SELECT j, 4 * j + unnest(range(n_pets(j))) AS p FROM range(%[1]d) t(j))
			SELECT 'h_' || j AS household_id, 'pet_' || p AS pet_id FROM owned
			UNION ALL -- pets shared with a second household
			SELECT 'h_' || pick('share', p, %[1]d), 'pet_' || p FROM owned WHERE u('share.p', p) < 0.03
			UNION ALL -- a junction row listed twice
			SELECT 'h_' || j, 'pet_' || p FROM owned WHERE u('dup.p', p) < 0.01
			UNION ALL -- rows pointing at pets that do not exist
			SELECT 'h_' || j, 'pet_missing_' || j FROM range(%[1]d) t(j) WHERE u('ghost', j) < 0.005`, h)},

		{"ANALYTICS.AUDIENCE_MEMBERSHIPS", "audience_memberships.parquet", fmt.Sprintf(`
			WITH m AS (
				SELECT profile_key(i) AS segment_id, 'platinum_tier' AS audience_key FROM range(%[1]d) t(i)
				WHERE (plan_of(i) = 'platinum' AND u('plat', i) < 0.8) OR u('plat.rand', i) < 0.03
				UNION ALL
				SELECT profile_key(i), 'churned' FROM range(%[1]d) t(i) WHERE u('churn', i) < 0.05)
			SELECT * FROM m
			UNION ALL -- listed twice
			SELECT * FROM m WHERE u('m.dup', segment_id || audience_key) < 0.03
			UNION ALL -- users no profile knows
			SELECT 'u_unknown_' || k, 'platinum_tier' FROM range(%[2]d) t(k)`, n, s.unknown)},

		{"ANALYTICS.TRACKS", "tracks.parquet", fmt.Sprintf(`
			SELECT 'e_' || i || '_' || k AS message_id, profile_key(i) AS user_id, event,
			       anchor() - to_seconds(pick('ev.at', i * 64 + k, 60 * 86400)) AS "timestamp",
			       CASE WHEN event = 'Order Completed'
			            THEN money(lognormal('ev.total', i * 64 + k, CASE WHEN eng(i) THEN 90 ELSE 40 END, 0.7)) END AS total
			FROM (SELECT i, k, CASE WHEN eng(i) THEN %[3]s ELSE %[4]s END AS event
			      FROM (SELECT i, unnest(range(n_events(i))) AS k FROM range(%[1]d) t(i)))
			UNION ALL
			SELECT 'e_unknown_' || k, 'u_unknown_' || k, 'Order Completed', anchor() - INTERVAL 1 DAY, money(100)
			FROM range(%[2]d) t(k)`, n, s.unknown,
			weighted("ev.name.eng", "i * 64 + k", "'Order Completed'", 0.6, "'Product Viewed'", 0.25, "'Signed In'"),
			weighted("ev.name", "i * 64 + k", "'Order Completed'", 0.2, "'Product Viewed'", 0.45, "'Signed In'", 0.25, "'Cart Viewed'"))},
	}
}

// workspaceText is the generated workspace.la: the graph and audiences of
// DESIGN.md over the generated files.
func workspaceText(opts Options, anchor time.Time, tabs []Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by `linkaud gen --profiles %d --seed %d --anchor %s`.\n", opts.Profiles, opts.Seed, anchor.Format("2006-01-02"))
	b.WriteString("# Times in the data lie before the anchor date.\n\n")
	b.WriteString("warehouse {\n  type duckdb\n  path \":memory:\"\n")
	for _, t := range tabs {
		fmt.Fprintf(&b, "  load %s from %s\n", dslString(t.Name), dslString(t.File))
	}
	b.WriteString("}\n\nstate \".linkaud\"\n")
	b.WriteString(graphText)
	b.WriteString(audiencesText)
	b.WriteString(manyAudiences(opts.Audiences))
	b.WriteString(testsText(anchor))
	return b.String()
}

// AudienceName is the name of the i-th generated audience (from 1).
func AudienceName(i int) string { return fmt.Sprintf("gen_%04d", i) }

// AudienceEvery is the schedule of the generated audiences.
const AudienceEvery = "15m"

// manyAudiences writes n audiences that differ in path, quantifier and
// threshold, so that no two plans are the same query.
func manyAudiences(n int) string {
	if n <= 0 {
		return ""
	}
	plans := []string{"silver", "gold", "platinum"}
	pets := []string{"cat", "dog"}
	var b strings.Builder
	fmt.Fprintf(&b, "\n# %d generated audiences (linkaud gen --audiences %d).\n", n, n)
	for i := range n {
		k := 1 + (i/6)%5 // 1 … 5
		var match string
		switch i % 6 {
		case 0:
			match = fmt.Sprintf(`trait plan = %q and profile -> account where status = "open"`, plans[(i/6)%3])
		case 1:
			match = fmt.Sprintf(`profile -> account -> credit_card where balance = "Outstanding" -> at least %d transaction where amount > %d`, k, 50*k)
		case 2:
			match = fmt.Sprintf(`profile -> household -> at least %d pet where type = %q`, 1+(i/6)%2, pets[(i/12)%2])
		case 3:
			match = fmt.Sprintf(`profile -> account -> subscription where tier = "Premium" -> at least %d transaction`, k)
		case 4:
			match = fmt.Sprintf(`performed "Order Completed" at least %d times within %d days`, k, 10*k)
		case 5:
			match = fmt.Sprintf(`profile -> account having count >= %d`, k)
		}
		fmt.Fprintf(&b, "audience %s {\n  schedule every %s\n  match %s\n}\n", AudienceName(i+1), AudienceEvery, match)
	}
	return b.String()
}

// testsText is the workspace's unit tests (`linkaud test`), their times
// relative to the anchor as the data's are.
func testsText(anchor time.Time) string {
	day := func(d int) string { return anchor.AddDate(0, 0, d).Format(time.RFC3339) }
	r := strings.NewReplacer("{now}", day(0), "{d-10}", day(-10), "{d-20}", day(-20), "{d-5}", day(-5), "{d-3}", day(-3), "{d-1}", day(-1))
	return r.Replace(testsTemplate)
}

const testsTemplate = `
test "outstanding balance: one card outstanding, one paid" {
  audience outstanding_balance
  now "{now}"
  given "ANALYTICS.PROFILES" {
    columns segment_id, email
    row "p1", "p1@example.com"
    row "p2", "p2@example.com"
  }
  given "BANK.ACCOUNTS" {
    columns id, email
    row "a1", "p1@example.com"
    row "a2", "p2@example.com"
  }
  given "BANK.CREDIT_CARDS" {
    columns id, account_id, balance
    row "c1", "a1", "Outstanding"
    row "c2", "a2", "Paid"
  }
  expect members "p1"
  expect member "p1" with entities credit_card "c1"
  then
  given "BANK.CREDIT_CARDS" {
    columns id, account_id, balance
    row "c1", "a1", "Paid"
    row "c2", "a2", "Outstanding"
  }
  expect events exited "p1", entered "p2", removed credit_card "c1" for "p1", added credit_card "c2" for "p2"
}

test "premium heavy user: five big transactions and three orders" {
  audience premium_heavy_users
  now "{now}"
  given "ANALYTICS.PROFILES" {
    columns segment_id, email, plan
    row "p1", "p1@example.com", "gold"
  }
  given "BANK.ACCOUNTS" {
    columns id, email, status, opened_at
    row "a1", "p1@example.com", "open", "{d-20}"
  }
  given "BANK.SUBSCRIPTIONS" {
    columns id, account_id, tier
    row "s1", "a1", "Premium"
  }
  given "BANK.TRANSACTIONS" {
    columns id, subscription_id, amount
    row "t1", "s1", 150
    row "t2", "s1", 150
    row "t3", "s1", 150
    row "t4", "s1", 150
    row "t5", "s1", 150
  }
  given "ANALYTICS.TRACKS" {
    columns user_id, event, timestamp, total
    row "p1", "Order Completed", "{d-10}", 60
    row "p1", "Order Completed", "{d-5}", 70
    row "p1", "Order Completed", "{d-3}", 80
  }
  expect members "p1"
  then
  given "BANK.TRANSACTIONS" {
    columns id, subscription_id, amount
    row "t1", "s1", 150
    row "t2", "s1", 150
    row "t3", "s1", 150
    row "t4", "s1", 150
    row "t5", "s1", 99
  }
  expect events exited "p1"
  expect no members
}
`

// dslString quotes s as a .la string.
func dslString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

const graphText = `
graph {
  profile {
    table "ANALYTICS.PROFILES"     # one row per profile; its columns are traits
    key   segment_id
  }
  entity account     { table "BANK.ACCOUNTS"      key id }
  entity credit_card { table "BANK.CREDIT_CARDS"  key id }
  entity transaction { table "BANK.TRANSACTIONS"  key id }
  entity subscription { table "BANK.SUBSCRIPTIONS" key id }
  entity household   { table "HOME.HOUSEHOLDS"    key id }
  entity pet         { table "HOME.PETS"          key id }

  relationship profile -> account         on profile.email = account.email
  relationship account -> credit_card     on account.id = credit_card.account_id
  relationship credit_card -> transaction on credit_card.id = transaction.card_id
  relationship account -> subscription    on account.id = subscription.account_id
  relationship subscription -> transaction on subscription.id = transaction.subscription_id
  relationship profile -> household       on profile.household_id = household.id
  # many-to-many through a junction table
  relationship household -> pet through "HOME.HOUSEHOLD_PETS" as hp
      on household.id = hp.household_id and hp.pet_id = pet.id

  # audiences computed elsewhere, readable in the warehouse
  memberships { table "ANALYTICS.AUDIENCE_MEMBERSHIPS"  profile segment_id  audience audience_key }
  events { table "ANALYTICS.TRACKS"  profile user_id  name event  time timestamp }
}
`

const audiencesText = `
audience outstanding_balance {
  description "Has a credit card with an outstanding balance"
  schedule every 1h
  match profile -> account -> credit_card where balance = "Outstanding"
  enrich credit_card.balance, credit_card.due_date, account.type, trait.email
}

audience platinum_cat_owners {
  match profile -> household -> pet where type = "cat"
    and in audience platinum_tier
}

audience premium_heavy_users {
  match profile -> account where (status = "open" and opened_at within 365 days)
                -> subscription where tier = "Premium"
                -> at least 5 transaction where amount > 100
    and trait plan in ("gold", "platinum")
    and not profile -> account where status = "frozen"
    and performed "Order Completed" at least 3 times within 30 days where total > 50
}
`
