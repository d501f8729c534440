package routerostest

import (
	"errors"
	"strconv"
	"strings"
)

var errBadQuery = errors.New("invalid query")

// row is one item of a menu as the API shows it; field order is kept so
// replies look like a router's and stay stable for tests.
type row []field

type field struct{ key, value string }

func (r row) get(key string) (string, bool) {
	for _, f := range r {
		if f.key == key {
			return f.value, true
		}
	}
	return "", false
}

// match evaluates RouterOS API query words (without the leading '?') on a
// row. Each word pushes a result on a stack, "#" words combine the stack,
// and the final stack is ANDed, as the API documentation describes.
func match(queries []string, r row) (bool, error) {
	if len(queries) == 0 {
		return true, nil
	}
	var st []bool
	pop := func() (bool, error) {
		if len(st) == 0 {
			return false, errBadQuery
		}
		v := st[len(st)-1]
		st = st[:len(st)-1]
		return v, nil
	}
	for _, q := range queries {
		switch {
		case q == "":
			return false, errBadQuery
		case q[0] == '#':
			for _, op := range q[1:] {
				switch {
				case op == '!':
					v, err := pop()
					if err != nil {
						return false, err
					}
					st = append(st, !v)
				case op == '&' || op == '|':
					a, err := pop()
					if err != nil {
						return false, err
					}
					b, err := pop()
					if err != nil {
						return false, err
					}
					if op == '&' {
						st = append(st, a && b)
					} else {
						st = append(st, a || b)
					}
				case op == '.':
					if len(st) == 0 {
						return false, errBadQuery
					}
					st = append(st, st[len(st)-1])
				case op >= '0' && op <= '9':
					i := int(op - '0')
					if i >= len(st) {
						return false, errBadQuery
					}
					st = append(st, st[i])
				default:
					return false, errBadQuery
				}
			}
		case q[0] == '-':
			_, ok := r.get(q[1:])
			st = append(st, !ok)
		case q[0] == '<' || q[0] == '>':
			name, want, ok := strings.Cut(q[1:], "=")
			if !ok || name == "" {
				return false, errBadQuery
			}
			have, present := r.get(name)
			c := compare(have, want)
			st = append(st, present && ((q[0] == '<' && c < 0) || (q[0] == '>' && c > 0)))
		default:
			body := q
			if body[0] == '=' {
				body = body[1:]
			}
			name, want, hasValue := strings.Cut(body, "=")
			if name == "" {
				return false, errBadQuery
			}
			have, present := r.get(name)
			if !hasValue {
				st = append(st, present)
			} else {
				st = append(st, have == want)
			}
		}
	}
	for _, v := range st {
		if !v {
			return false, nil
		}
	}
	return true, nil
}

// compare orders numbers numerically (counters, MTUs) and everything else
// as strings, which is what the queries we care about need.
func compare(a, b string) int {
	x, errA := strconv.ParseInt(a, 0, 64)
	y, errB := strconv.ParseInt(b, 0, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// project keeps only the fields named in a .proplist, in its order.
func project(r row, proplist []string) row {
	if proplist == nil {
		return r
	}
	out := make(row, 0, len(proplist))
	for _, k := range proplist {
		if v, ok := r.get(k); ok {
			out = append(out, field{k, v})
		}
	}
	return out
}

func (r row) words() []string {
	w := make([]string, 0, len(r))
	for _, f := range r {
		w = append(w, "="+f.key+"="+f.value)
	}
	return w
}

func (r row) String() string { return strings.Join(r.words(), "\x00") }
