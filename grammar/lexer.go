package grammar

import (
	"io"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// Token types of the language. The order and names are those of the
// regular-expression lexer this one replaced (see lexer_test.go, which
// keeps that definition as the reference the two are compared against).
const (
	tokComment lexer.TokenType = -(iota + 2) // lexer.EOF is -1
	tokSpace
	tokString
	tokBadString
	tokDuration
	tokNumber
	tokArrow
	tokOp
	tokIdent
	tokPunct
	tokInvalid
)

var symbols = map[string]lexer.TokenType{
	"EOF":        lexer.EOF,
	"Comment":    tokComment,
	"Whitespace": tokSpace,
	"String":     tokString,
	"BadString":  tokBadString,
	"Duration":   tokDuration,
	"Number":     tokNumber,
	"Arrow":      tokArrow,
	"Op":         tokOp,
	"Ident":      tokIdent,
	"Punct":      tokPunct,
	"Invalid":    tokInvalid,
}

// Lexer is the token definition of the language, a hand-written
// lexer.Definition (participle's regular-expression lexer took 1.4 s on a
// 10 MB file; this one is about twenty times faster). Its tokens are, rule by
// rule and in this order of preference:
//
//	Comment     #[^\n]*
//	Whitespace  [ \t\r\n]+
//	String      "(\\.|[^"\\\n])*"
//	BadString   "(\\.|[^"\\\n])*\\?      an unterminated string
//	Duration    [0-9]+[A-Za-z_][A-Za-z0-9_]*
//	Number      -?[0-9]+(\.[0-9]+)?
//	Arrow       ->
//	Op          != <= >= = < >
//	Ident       [A-Za-z_][A-Za-z0-9_]*
//	Punct       [{}(),.%]
//	Invalid     any other rune
//
// BadString and Invalid exist so that lexing never fails: the parser turns
// them into precise diagnostics instead of stopping at the first odd byte.
var Lexer lexer.Definition = laLexer{}

type laLexer struct{}

var (
	_ lexer.Definition       = laLexer{}
	_ lexer.StringDefinition = laLexer{}
	_ lexer.BytesDefinition  = laLexer{}
)

func (laLexer) Symbols() map[string]lexer.TokenType {
	m := make(map[string]lexer.TokenType, len(symbols))
	for k, v := range symbols {
		m[k] = v
	}
	return m
}

func (l laLexer) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return l.LexString(filename, string(b))
}

func (laLexer) LexString(filename string, src string) (lexer.Lexer, error) {
	return &scanner{src: src, pos: Pos{Filename: filename, Line: 1, Column: 1}}, nil
}

func (l laLexer) LexBytes(filename string, src []byte) (lexer.Lexer, error) {
	return l.LexString(filename, string(src))
}

// scanner yields every token, whitespace and comments included, then EOF
// forever. It never fails.
type scanner struct {
	src string
	pos Pos
}

// Next implements lexer.Lexer.
func (s *scanner) Next() (lexer.Token, error) { return s.next(), nil }

func (s *scanner) next() lexer.Token {
	start := s.pos
	i := start.Offset
	src := s.src
	if i >= len(src) {
		return lexer.Token{Type: lexer.EOF, Pos: start}
	}
	c := src[i]
	typ := tokInvalid
	j := i + 1
	ascii := true // the token is ASCII without newlines: columns advance by bytes
	switch {
	case c == '#':
		for j < len(src) && src[j] != '\n' {
			j++
		}
		typ, ascii = tokComment, false
	case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\r' || src[j] == '\n') {
			j++
		}
		typ = tokSpace
		s.pos.Offset = j
		for k := i; k < j; k++ {
			if src[k] == '\n' {
				s.pos.Line++
				s.pos.Column = 1
			} else {
				s.pos.Column++
			}
		}
		return lexer.Token{Type: typ, Value: src[i:j], Pos: start}
	case c == '"':
		typ, ascii = tokBadString, false
	loop:
		for j < len(src) {
			switch src[j] {
			case '"':
				j++
				typ = tokString
				break loop
			case '\n':
				break loop
			case '\\':
				if j+1 >= len(src) || src[j+1] == '\n' {
					j++ // BadString keeps a final backslash
					break loop
				}
				// An escape takes one whole rune.
				_, n := utf8.DecodeRuneInString(src[j+1:])
				j += 1 + n
			default:
				j++
			}
		}
	case isDigit(c):
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j < len(src) && isIdentStart(src[j]) {
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			typ = tokDuration
		} else {
			j = fraction(src, j)
			typ = tokNumber
		}
	case c == '-':
		switch {
		case j < len(src) && isDigit(src[j]):
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			j = fraction(src, j)
			typ = tokNumber
		case j < len(src) && src[j] == '>':
			j++
			typ = tokArrow
		}
	case c == '!':
		if j < len(src) && src[j] == '=' {
			j++
			typ = tokOp
		}
	case c == '<' || c == '>':
		if j < len(src) && src[j] == '=' {
			j++
		}
		typ = tokOp
	case c == '=':
		typ = tokOp
	case isIdentStart(c):
		for j < len(src) && isIdentPart(src[j]) {
			j++
		}
		typ = tokIdent
	case c == '{' || c == '}' || c == '(' || c == ')' || c == ',' || c == '.' || c == '%':
		typ = tokPunct
	default:
		// One rune; an invalid UTF-8 byte counts as one, as in regexp.
		_, n := utf8.DecodeRuneInString(src[i:])
		j = i + n
		ascii = c < utf8.RuneSelf
	}
	v := src[i:j]
	s.pos.Offset = j
	if ascii {
		s.pos.Column += j - i
	} else {
		s.pos.Column += utf8.RuneCountInString(v)
	}
	return lexer.Token{Type: typ, Value: v, Pos: start}
}

// fraction extends a number ending at j by `\.[0-9]+`, if present.
func fraction(src string, j int) int {
	if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
		j += 2
		for j < len(src) && isDigit(src[j]) {
			j++
		}
	}
	return j
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
