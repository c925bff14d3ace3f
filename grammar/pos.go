package grammar

import (
	"fmt"
	"unicode/utf8"
)

// CheckPos reports an error unless p's line and column (1-based, columns
// in runes) are those of its byte offset in src. Positions are made by the
// lexer and carried through every later pass; tools and tests that edit
// source or trees use it to prove they still point where they say.
func CheckPos(src []byte, p Pos) error {
	if p.Offset < 0 || p.Offset > len(src) {
		return fmt.Errorf("offset %d outside the file (%d bytes)", p.Offset, len(src))
	}
	line, col := 1, 1
	for i := 0; i < p.Offset; {
		r, n := utf8.DecodeRune(src[i:])
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	if p.Line != line || p.Column != col {
		return fmt.Errorf("position %d:%d, but offset %d is at %d:%d", p.Line, p.Column, p.Offset, line, col)
	}
	return nil
}
