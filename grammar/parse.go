package grammar

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// lookahead is how many tokens participle may read into an alternative
// before it commits to it.
const lookahead = 2

var parser = participle.MustBuild[Decl](
	participle.Lexer(Lexer),
	participle.UseLookahead(lookahead),
)

// TopLevelKeywords start a declaration.
var TopLevelKeywords = []string{"warehouse", "state", "graph", "audience", "destination", "activation", "test"}

func isTopLevel(t lexer.Token) bool {
	if t.Type != tokIdent {
		return false
	}
	for _, k := range TopLevelKeywords {
		if t.Value == k {
			return true
		}
	}
	return false
}

// Error is a syntax error with the range of source it concerns.
type Error struct {
	Pos, EndPos Pos
	Msg         string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Pos.Filename, e.Pos.Line, e.Pos.Column, e.Msg)
}

// ErrorList is a list of syntax errors sorted by position.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0], len(l)-1)
}

// Err returns nil for an empty list, else the list.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Pos.Line != l[j].Pos.Line {
			return l[i].Pos.Line < l[j].Pos.Line
		}
		return l[i].Pos.Column < l[j].Pos.Column
	})
}

// ParseFile parses one .la file. It returns the declarations that parsed
// and every syntax error found: each top-level declaration is parsed on its
// own, so an error in one does not hide errors in the next. The File is
// never nil.
func ParseFile(name string, src []byte) (*File, ErrorList) {
	f := &File{Name: name, Src: src}
	var errs ErrorList
	if !utf8.Valid(src) {
		pos := invalidUTF8Pos(name, src)
		errs = append(errs, &Error{Pos: pos, EndPos: pos, Msg: fmt.Sprintf("invalid UTF-8 byte %#02x: .la files are UTF-8 text", src[pos.Offset])})
		return f, errs
	}
	toks, lexErrs := tokens(f)
	errs = lexErrs
	chunks := splitDecls(toks)
	decls, declErrs := parseDecls(chunks, len(toks))
	for i, chunk := range chunks {
		if err := declErrs[i]; err != nil {
			// After an unterminated string (which swallowed the rest of its
			// line) or characters that are no token, the declaration's own
			// error is most likely a consequence: report the cause alone.
			if !lexErrs.within(chunk[0].Pos.Offset, chunk[len(chunk)-1].Pos.Offset) {
				errs = append(errs, err)
			}
			b := BrokenDecl{Keyword: chunk[0].Value}
			if len(chunk) > 1 && chunk[1].Type == tokIdent {
				b.Name = chunk[1].Value
			}
			f.Broken = append(f.Broken, b)
			continue
		}
		f.Decls = append(f.Decls, decls[i])
	}
	errs.sort()
	return f, errs
}

// tokens lexes f.Src into the tokens the parser sees, ending with EOF. It
// keeps the comments in f.Comments and reports bad characters and strings.
// An unterminated string is passed on closed, so that the rest of its
// declaration still parses.
func tokens(f *File) (toks []lexer.Token, errs ErrorList) {
	lex := scanner{src: string(f.Src), pos: Pos{Filename: f.Name, Line: 1, Column: 1}}
	var invalid *Error // the run of invalid characters being collected
	endRun := func() {
		if invalid != nil {
			invalid.Msg = invalidMessage(f.Src[invalid.Pos.Offset:invalid.EndPos.Offset])
			invalid = nil
		}
	}
	for {
		t := lex.next()
		if t.Type != tokInvalid {
			endRun()
		}
		switch t.Type {
		case tokSpace:
			continue
		case tokComment:
			f.Comments = append(f.Comments, Comment{Pos: t.Pos, Text: strings.TrimRight(t.Value, " \t\r")})
			continue
		case tokInvalid:
			if t.Value == "'" {
				endRun()
				// 'text' is one error, not two around an identifier.
				if n := strings.IndexAny(lex.src[t.Pos.Offset+1:], "'\n"); n >= 0 && lex.src[t.Pos.Offset+1+n] == '\'' {
					quoted := lex.src[t.Pos.Offset : t.Pos.Offset+n+2]
					end := t.Pos
					end.Advance(quoted)
					lex.pos = end
					errs = append(errs, &Error{Pos: t.Pos, EndPos: end, Msg: fmt.Sprintf("strings are in double quotes: write %s", Quote(quoted[1:len(quoted)-1]))})
					continue
				}
			}
			// A run of invalid characters is one error.
			if invalid != nil && invalid.EndPos.Offset == t.Pos.Offset {
				invalid.EndPos = endOf(t)
				continue
			}
			endRun()
			invalid = &Error{Pos: t.Pos, EndPos: endOf(t)}
			errs = append(errs, invalid)
			continue
		case tokBadString:
			errs = append(errs, &Error{Pos: t.Pos, EndPos: endOf(t), Msg: "unterminated string: a string ends with \" on the same line"})
			t.Type = tokString
			t.Value = strings.TrimSuffix(t.Value, `\`) + `"`
		case tokString:
			if _, bad := unquote(t.Value); bad >= 0 {
				_, n := utf8.DecodeRuneInString(t.Value[bad+1:])
				esc := t.Value[bad : bad+1+n]
				p := t.Pos
				p.Advance(t.Value[:bad])
				e := p
				e.Advance(esc)
				errs = append(errs, &Error{Pos: p, EndPos: e, Msg: fmt.Sprintf("unknown escape %q in string: use \\\" \\\\ \\n \\t or \\r", esc)})
			}
		}
		toks = append(toks, t)
		if t.EOF() {
			return toks, errs
		}
	}
}

// within reports whether an error of l, which is in source order, starts
// in [start, end).
func (l ErrorList) within(start, end int) bool {
	i := sort.Search(len(l), func(i int) bool { return l[i].Pos.Offset >= start })
	return i < len(l) && l[i].Pos.Offset < end
}

// parallelTokens is the size from which a file's declarations are parsed
// on all cores: participle allocates a lot, and a 10 MB file takes
// seconds on one.
const parallelTokens = 50000

// parseDecls parses each chunk; the results are in chunk order.
func parseDecls(chunks [][]lexer.Token, ntoks int) ([]*Decl, []*Error) {
	decls := make([]*Decl, len(chunks))
	errs := make([]*Error, len(chunks))
	workers := min(runtime.GOMAXPROCS(0), len(chunks))
	if ntoks < parallelTokens || workers < 2 {
		for i, c := range chunks {
			decls[i], errs[i] = parseDecl(c)
		}
		return decls, errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				decls[i], errs[i] = parseDecl(chunks[i])
			}
		})
	}
	wg.Wait()
	return decls, errs
}

// invalidMessage describes a run of characters that are no token, with a
// hint for the ones other languages use.
func invalidMessage(run []byte) string {
	s := string(run)
	what := fmt.Sprintf("unexpected character %q", s)
	if n := utf8.RuneCountInString(s); n > 20 {
		what = fmt.Sprintf("%d unexpected characters %q…", n, string([]rune(s)[:20]))
	} else if n > 1 {
		what = fmt.Sprintf("unexpected characters %q", s)
	}
	hint := ""
	switch {
	case s == "&&" || s == "&":
		hint = `: write "and"`
	case s == "||" || s == "|":
		hint = `: write "or"`
	case s == "!":
		hint = `: write "not", or "!=" to compare`
	case strings.HasPrefix(s, "'"):
		hint = ": strings are in double quotes"
	case s == ";":
		hint = ": settings and clauses need no separator"
	case s == "-":
		hint = `: a "-" starts "->" or a negative number`
	default:
		r, _ := utf8.DecodeRuneInString(s)
		switch {
		case unicode.IsSpace(r):
			hint = fmt.Sprintf(": %U is not an ordinary space", r)
		case unicode.IsLetter(r):
			hint = ": names are ASCII letters, digits and _"
		}
	}
	return what + hint
}

// splitDecls cuts the token stream (ending in EOF) into one chunk per
// top-level declaration. A declaration starts at a top-level keyword at
// brace depth zero, or at a top-level keyword in the first column, which
// recovers from a missing '}'. Each chunk ends with an EOF token placed at
// the next chunk's first token.
func splitDecls(toks []lexer.Token) [][]lexer.Token {
	var chunks [][]lexer.Token
	depth, start := 0, 0
	cut := func(i int) {
		if i > start {
			// The EOF carries the next declaration's keyword for messages.
			eof := lexer.Token{Type: lexer.EOF, Pos: toks[i].Pos}
			if !toks[i].EOF() {
				eof.Value = toks[i].Value
			}
			chunk := append(toks[start:i:i], eof)
			chunks = append(chunks, chunk)
		}
		start = i
	}
	for i, t := range toks {
		if t.EOF() {
			cut(i)
			break
		}
		// `test` starts a declaration only before its name, a string, so
		// that it stays free as a name (`audience test`, a column).
		if isTopLevel(t) && (depth <= 0 || t.Pos.Column == 1) && (t.Value != "test" || i+1 < len(toks) && toks[i+1].Type == tokString) {
			cut(i)
			depth = 0
		}
		if t.Type == tokPunct {
			switch t.Value {
			case "{":
				depth++
			case "}":
				depth--
			}
		}
	}
	return chunks
}

// sliceLexer replays a chunk of tokens to participle.
type sliceLexer struct {
	toks []lexer.Token
	next int
}

func (l *sliceLexer) Next() (lexer.Token, error) {
	t := l.toks[l.next]
	if l.next < len(l.toks)-1 {
		l.next++
	}
	return t, nil
}

// MaxNesting bounds how deeply conditions nest: open parentheses at once,
// and `not`s in a row. Deeper text is an error rather than a deep
// recursion in the parser.
const MaxNesting = 100

func parseDecl(chunk []lexer.Token) (*Decl, *Error) {
	if err := checkNesting(chunk); err != nil {
		return nil, err
	}
	pl, err := lexer.Upgrade(&sliceLexer{toks: chunk})
	if err == nil {
		var d *Decl
		d, err = parser.ParseFromLexer(pl)
		if err == nil {
			return d, nil
		}
	}
	if e := diagnose(chunk); e != nil {
		return nil, e
	}
	return nil, syntaxError(err, chunk)
}

func checkNesting(chunk []lexer.Token) *Error {
	depth, nots := 0, 0
	for _, t := range chunk {
		if t.Type == tokIdent && t.Value == "not" {
			nots++
			if nots > MaxNesting {
				return &Error{Pos: t.Pos, EndPos: endOf(t), Msg: fmt.Sprintf("too many nots in a row: at most %d", MaxNesting)}
			}
			continue
		}
		nots = 0
		if t.Type != tokPunct {
			continue
		}
		switch t.Value {
		case "(":
			depth++
			if depth > MaxNesting {
				return &Error{Pos: t.Pos, EndPos: endOf(t), Msg: fmt.Sprintf("too deeply nested: more than %d parentheses open", MaxNesting)}
			}
		case ")":
			depth = max(0, depth-1)
		}
	}
	return nil
}

// syntaxError rewrites participle's error in the language's terms.
func syntaxError(err error, chunk []lexer.Token) *Error {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Error{Pos: chunk[0].Pos, EndPos: chunk[0].Pos, Msg: err.Error()}
	}
	pos := perr.Position()
	msg := perr.Message()
	if strings.HasPrefix(msg, "too many iterations") {
		msg = fmt.Sprintf("too long: a list or block holds at most %d items", participle.MaxIterations)
	}
	var ute *participle.UnexpectedTokenError
	if errors.As(err, &ute) {
		tok := ute.Unexpected
		end := endOf(tok)
		expected := ""
		if ute.Expect != "" {
			expected = ", expected " + ute.Expect
		}
		if tok.EOF() {
			// The chunk's EOF sits on the next declaration (or the real end).
			what := "the end of the file"
			if tok.Value != "" {
				what = fmt.Sprintf("%q", tok.Value)
			}
			last := chunk[len(chunk)-2]
			return &Error{Pos: endOf(last), EndPos: endOf(last), Msg: fmt.Sprintf("declaration is incomplete before %s%s", what, expected)}
		}
		return &Error{Pos: tok.Pos, EndPos: end, Msg: fmt.Sprintf("unexpected %q%s", tok.Value, expected)}
	}
	return &Error{Pos: pos, EndPos: pos, Msg: msg}
}

func endOf(t lexer.Token) Pos {
	p := t.Pos
	p.Advance(t.Value)
	return p
}

func invalidUTF8Pos(name string, src []byte) Pos {
	p := Pos{Filename: name, Line: 1, Column: 1}
	for p.Offset < len(src) {
		r, n := utf8.DecodeRune(src[p.Offset:])
		if r == utf8.RuneError && n <= 1 {
			return p
		}
		p.Advance(string(src[p.Offset : p.Offset+n]))
	}
	return p
}

// unquote decodes a double-quoted string. It returns the index of the first
// unknown escape, or -1.
func unquote(raw string) (string, int) {
	if len(raw) < 2 {
		return "", -1
	}
	body := raw[1 : len(raw)-1]
	if !strings.ContainsRune(body, '\\') {
		return body, -1
	}
	var b strings.Builder
	bad := -1
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 >= len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		switch body[i] {
		case '"', '\\':
			b.WriteByte(body[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			if bad < 0 {
				bad = i // index in raw of the backslash: body starts at raw[1]
			}
			b.WriteByte(body[i])
		}
	}
	return b.String(), bad
}

// Quote encodes s as a string literal of the language.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
