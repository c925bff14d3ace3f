package grammar

import "testing"

func TestSuggest(t *testing.T) {
	names := []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users", "account", "credit_card", "pet", "a"}
	for _, tc := range []struct{ in, want string }{
		{"acount", "account"},
		{"credit_crad", "credit_card"}, // transposition
		{"premuim_heavy_users", "premium_heavy_users"},
		{"outstanding_balanc", "outstanding_balance"},
		{"PREMIUM_HEAVY_USERS", "premium_heavy_users"}, // case is ignored
		{"pt", "pet"},
		{"b", "a"},
		{"zebra", ""},
		{"churned", ""},
		{"account", ""}, // the name itself is no suggestion
	} {
		if got := Suggest(tc.in, names); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
