package web

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// csvCell keeps a cell from being run as a formula by a spreadsheet: user
// names come from routers and customers from billing, not from us. A
// spreadsheet splitting at the other locale's separator (';' or ',') sees
// a new cell after each one inside a field, quotes or not, so a formula
// start after either separator is neutralised with a ' too.
func csvCell(v string) string {
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return v // a plain number, such as -1, is no formula
	}
	var b strings.Builder
	cellStart := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if cellStart && strings.IndexByte("=+-@\t\r", c) >= 0 {
			b.WriteByte('\'')
		}
		b.WriteByte(c)
		cellStart = c == ',' || c == ';'
	}
	return b.String()
}

// csvWriter writes every CSV the server sends. encoding/csv quotes only
// around commas, but Excel in semicolon locales (Norway among them) splits
// at ';': "x;=1+2" unquoted becomes a second cell holding a formula. So
// every field with ',' ';' '"' or a line break is quoted, and every field
// is neutralised by csvCell.
type csvWriter struct {
	w   *bufio.Writer
	err error // the first failed flush
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: bufio.NewWriter(w)} }

// Write writes one record; errors are kept for Flush.
func (c *csvWriter) Write(fields []string) error {
	for i, f := range fields {
		if i > 0 {
			c.w.WriteByte(',') //nolint:errcheck // bufio keeps the error for Flush
		}
		f = csvCell(f)
		if strings.ContainsAny(f, ",;\"\r\n") {
			f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
		}
		c.w.WriteString(f) //nolint:errcheck // bufio keeps the error for Flush
	}
	_, err := c.w.WriteString("\n")
	return err
}

// Flush sends what is buffered; a failure means the client went away, and
// Error says so.
func (c *csvWriter) Flush() {
	if err := c.w.Flush(); err != nil && c.err == nil {
		c.err = err
	}
}

// Error is the first write or flush failure, nil while the client reads.
func (c *csvWriter) Error() error { return c.err }
