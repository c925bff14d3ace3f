package diff

// TableKeys counts the keys of each table (first key byte), so that tests
// can check that nothing is left behind where the API cannot see.
func TableKeys(s *Store) (map[byte]int, error) {
	out := map[byte]int{}
	err := s.scan(nil, func(k, _ []byte) error {
		out[k[0]]++
		return nil
	})
	return out, err
}

// Tables of TableKeys.
const (
	TableDelta    = tDelta
	TableCycle    = tCycle
	TableEvent    = tEvent
	TableTemplate = tTemplate
)

// History encoding, for the bound tests.
var (
	EncodeHistory = encodeHistory
	DecodeHistory = decodeHistory
)

func AppendHistory(pts []HistoryPoint, p HistoryPoint) []HistoryPoint {
	return appendHistory(pts, p, HistoryFullRuns, HistoryMaxPoints)
}

// ReceiveOnly is the first half of MoveAudience: to receives aud, from
// keeps it — what a crash between the two halves leaves.
func ReceiveOnly(from, to *Store, aud string) error {
	m, _, err := from.loadMeta(aud)
	if err != nil {
		return err
	}
	return to.receive(from, aud, m, &MoveReport{})
}
