package dsl

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// tableColumns is a warehouse catalogue as a map: the unit under test is
// which names CheckColumns asks about and how it reports; the real
// warehouses are exercised by `linkaud check --warehouse` tests.
type tableColumns map[string][]string

func (t tableColumns) Columns(_ context.Context, name TableName) ([]string, error) {
	cols, ok := t[name.String()]
	if !ok {
		return nil, fmt.Errorf("does not exist")
	}
	return cols, nil
}

func TestCheckColumns(t *testing.T) {
	srcs := workspaceWith(t, 0)
	srcs["case.la"] = []byte(`audience a {
  match profile -> account where statsu = "open" -> credit_card where credit_limit < account.max_limit
    and trait PLAN = "gold"
  enrich credit_card.balance
}
`)
	ws, diags := checkSources(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cat := tableColumns{
		"ANALYTICS.PROFILES":  {"SEGMENT_ID", "EMAIL", "HOUSEHOLD_ID", "plan"},
		"BANK.ACCOUNTS":       {"id", "email", "status", "max_limit"},
		"BANK.CREDIT_CARDS":   {"id", "account_id", "credit_limit"},
		"BANK.TRANSACTIONS":   {"id", "card_id", "subscription_id"},
		"BANK.SUBSCRIPTIONS":  {"id", "account_id"},
		"HOME.HOUSEHOLDS":     {"id"},
		"HOME.PETS":           {"id"},
		"HOME.HOUSEHOLD_PETS": {"household_id", "pet_id"},
	}
	got := CheckColumns(context.Background(), ws, cat)
	var b bytes.Buffer
	Render(&b, got, srcs)
	want := []string{
		`base.la:18:3: table ANALYTICS.TRACKS: does not exist`,
		`case.la:2:34: table BANK.ACCOUNTS has no column "statsu" (column of account); did you mean status?`,
		`case.la:4:10: table BANK.CREDIT_CARDS has no column "balance" (column of credit_card)`,
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("missing %q in:\n%s", w, b.String())
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d diagnostics, want %d:\n%s", len(got), len(want), b.String())
	}
}
