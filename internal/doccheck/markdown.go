package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Page is one Markdown file, parsed as far as the checks need.
type Page struct {
	Path     string // relative to the repository root, slash-separated
	Blocks   []*Block
	Links    []Link
	Anchors  map[string]bool // GitHub heading anchors
	Markers  []Marker
	rootPath string
}

// Block is a fenced code block.
type Block struct {
	Line    int // of the opening fence
	EndLine int // of the closing fence
	Lang    string
	Attrs   map[string]string // key=value words of the info string; flags map to ""
	Text    string
}

// Has reports whether the info string has the word or key.
func (b *Block) Has(word string) bool { _, ok := b.Attrs[word]; return ok }

// Link is a Markdown link target outside code.
type Link struct {
	Line   int
	Target string
}

// Marker is an HTML comment <!-- KIND: ARG --> followed by a table.
type Marker struct {
	Line int
	Kind string // "settings" or "metrics"
	Arg  string
	// Names are the backticked names of the first cell of each row of the
	// table that follows (before the next heading; the first word of each:
	// `entity_added ENTITY` names entity_added); nil when no table does.
	Names []Name
}

// Name is a backticked name in a table's first cell.
type Name struct {
	Line int
	Text string
}

var (
	fenceRE      = regexp.MustCompile("^(\\s*)(```+|~~~+)\\s*(.*)$")
	headingRE    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineCodeRE = regexp.MustCompile("`[^`]*`")
	linkRE       = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refDefRE     = regexp.MustCompile(`^\s*\[[^\]]+\]:\s*(\S+)`)
	hrefRE       = regexp.MustCompile(`href="([^"]+)"`)
	markerRE     = regexp.MustCompile(`^<!--\s*(settings|metrics)\s*:?\s*(.*?)\s*-->\s*$`)
	cellNameRE   = regexp.MustCompile("`([^`]+)`")
)

// ParsePage reads the page at root/rel.
func ParsePage(root, rel string) (*Page, error) {
	src, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	p := &Page{Path: filepath.ToSlash(rel), Anchors: map[string]bool{}, rootPath: root}
	slugs := map[string]int{}
	var (
		block  *Block
		fence  string
		indent string
		marker *Marker
		inTab  bool
	)
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if block != nil {
			if m := fenceRE.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[2], fence) && m[3] == "" {
				block.EndLine = n
				p.Blocks = append(p.Blocks, block)
				block = nil
				continue
			}
			block.Text += strings.TrimPrefix(line, indent) + "\n"
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			indent, fence = m[1], m[2]
			block = &Block{Line: n, Attrs: map[string]string{}}
			words := strings.Fields(m[3])
			if len(words) > 0 {
				block.Lang = words[0]
				for _, w := range words[1:] {
					k, v, _ := strings.Cut(w, "=")
					block.Attrs[k] = v
				}
			}
			marker, inTab = nil, false
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			slug := Slug(m[1])
			if k := slugs[slug]; k > 0 {
				p.Anchors[fmt.Sprintf("%s-%d", slug, k)] = true
			} else {
				p.Anchors[slug] = true
			}
			slugs[slug]++
			marker, inTab = nil, false
		}
		for _, m := range hrefRE.FindAllStringSubmatch(line, -1) {
			if strings.HasPrefix(m[1], "#") || !strings.Contains(m[1], "://") {
				p.Links = append(p.Links, Link{Line: n, Target: m[1]})
			}
		}
		if m := markerRE.FindStringSubmatch(line); m != nil {
			p.Markers = append(p.Markers, Marker{Line: n, Kind: m[1], Arg: m[2]})
			marker, inTab = &p.Markers[len(p.Markers)-1], false
			continue
		}
		text := inlineCodeRE.ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			p.Links = append(p.Links, Link{Line: n, Target: m[1]})
		}
		if m := refDefRE.FindStringSubmatch(line); m != nil {
			p.Links = append(p.Links, Link{Line: n, Target: m[1]})
		}
		if marker != nil {
			t := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(t, "|"):
				cells := strings.Split(strings.Trim(t, "|"), "|")
				first := strings.TrimSpace(cells[0])
				if !inTab {
					inTab = true // the header row
					if marker.Names == nil {
						marker.Names = []Name{}
					}
					continue
				}
				if strings.Trim(first, "-: ") == "" {
					continue // the delimiter row
				}
				for _, c := range cellNameRE.FindAllStringSubmatch(first, -1) {
					// `entity_added ENTITY` names entity_added.
					if f := strings.Fields(c[1]); len(f) > 0 {
						marker.Names = append(marker.Names, Name{Line: n, Text: f[0]})
					}
				}
			case inTab:
				marker, inTab = nil, false // the table ended
			}
		}
	}
	if block != nil {
		return nil, fmt.Errorf("%s:%d: unterminated code block", rel, block.Line)
	}
	return p, sc.Err()
}

// Slug is GitHub's anchor for a heading: lower case, punctuation dropped
// except - and _, spaces to hyphens. Backticks and emphasis are dropped
// with the punctuation; a link keeps its text.
func Slug(heading string) string {
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Pages parses README.md and every .md file under docs/, sorted by path.
func Pages(root string) ([]*Page, error) {
	rels := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, _ := filepath.Rel(root, path)
			rels = append(rels, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(rels[1:])
	var pages []*Page
	for _, rel := range rels {
		p, err := ParsePage(root, rel)
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
	}
	return pages, nil
}
