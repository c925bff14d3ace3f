package grammar

// The diagnoser of test blocks (see test.go for the grammar).

func (d *diagnoser) testClause() bool {
	t := d.peek()
	switch {
	case is(t, "audience"):
		d.next()
		d.name("the audience's name", `"audience"`)
	case is(t, "now"):
		d.next()
		d.str(`the cycle's start, e.g. "2026-03-15T12:00:00Z",`, `"now"`)
	case is(t, "then"):
		d.next()
	case is(t, "given"):
		d.next()
		d.str(`the table, e.g. "BANK.ACCOUNTS",`, `"given"`)
		switch {
		case is(d.peek(), "from"):
			d.next()
			d.str(`the CSV file, e.g. "tests/accounts.csv",`, `"from"`)
		case is(d.peek(), "{"):
			d.next()
			d.expect("columns", `"{" of inline rows`)
			d.name("a column", `"columns"`)
			for is(d.peek(), ",") {
				d.next()
				d.name("a column", `","`)
			}
			for is(d.peek(), "row") {
				d.next()
				d.value("a value (string, number, true, false or null)", `"row"`)
				for is(d.peek(), ",") {
					d.next()
					d.value("a value (string, number, true, false or null)", `","`)
				}
			}
			d.expect("}", "the rows (row VALUE, …)")
		default:
			d.fail(`from "FILE.csv" or { columns … row … } after the table`, "from")
		}
	case is(t, "expect"):
		d.next()
		switch t := d.peek(); {
		case is(t, "no"):
			d.next()
			if !is(d.peek(), "members") && !is(d.peek(), "events") {
				d.fail(`members or events after "expect no"`, "members", "events")
			}
			d.next()
		case is(t, "members"):
			d.next()
			d.strList("a profile key", `"members"`)
		case is(t, "member"):
			d.next()
			d.str("a profile key", `"member"`)
			if is(d.peek(), "with") {
				d.next()
				d.expect("entities", `"with"`)
				d.name("the entity", `"with entities"`)
				d.strList("an entity key", "the entity")
			}
		case is(t, "events"):
			d.next()
			for {
				d.name("an event: entered, exited, added or removed", `"events"`)
				if isIdent(d.peek()) {
					d.next()
				}
				d.str("a key", "the event")
				if is(d.peek(), "for") {
					d.next()
					d.str("the profile key", `"for"`)
				}
				if !is(d.peek(), ",") {
					break
				}
				d.next()
			}
		default:
			d.fail(`members, member, events, no members or no events after "expect"`, "members", "member", "events", "no")
		}
	default:
		return false
	}
	return true
}

func (d *diagnoser) strList(what, after string) {
	d.str(what, after)
	for is(d.peek(), ",") {
		d.next()
		d.str(what, `","`)
	}
}
