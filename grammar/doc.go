// Package grammar turns the text of a .la file into a parse tree with
// positions, and back into canonical text; it knows nothing of what the
// names mean (that is dsl.Check, its only consumer besides fmt).
//
// Entry points:
//
//   - ParseFile parses one file. Each top-level declaration is parsed on its
//     own, so a syntax error in one does not hide those in the next; the
//     File holds the declarations that parsed, the names of those that did
//     not (Broken), and every comment. Errors come as an ErrorList sorted by
//     position, each `file:line:col: message` with a range (columns count
//     runes from 1).
//   - Format prints a File in canonical layout, keeping every comment; it
//     is what `linkaud fmt` writes. Formatting its output changes nothing.
//   - Quote writes a string literal of the language.
//
// The tree (ast.go) is built by participle from the struct tags of its
// nodes. The tokens come from Lexer, a hand-written lexer.Definition
// (lexer.go). When participle rejects a declaration, diagnose (diagnose.go)
// walks the grammar by hand to say what was expected where, since
// participle's backtracking often reports a token far from the mistake.
// FuzzParse holds the pieces to each other: no panics, positions inside
// the file, Format round trips, and participle and diagnose agreeing on
// what parses.
package grammar
