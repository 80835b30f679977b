package celery

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Repr is Python's repr() of a decoded value: strings quoted as Python
// quotes them, None/True/False, floats as Python prints them (1.0, 1e+16),
// lists, dicts {'k': v} (keys sorted: Go maps have no order), datetimes as
// datetime.datetime(...), bytes as b'...'.
//
// celery's own argsrepr, kwargsrepr and event result fields are not repr()
// but celery.utils.saferepr, which quotes strings differently and
// truncates: use SafeRepr (or ArgsRepr/KwargsRepr) for those.
func Repr(v any) string {
	n, err := normalize(v, 0)
	if err != nil {
		return fmt.Sprintf("<unrepresentable %T: %v>", v, err)
	}
	var sb strings.Builder
	writeRepr(&sb, n, 0)
	return sb.String()
}

func writeRepr(sb *strings.Builder, v any, depth int) {
	if depth > maxDepth {
		sb.WriteString("[...]")
		return
	}
	switch x := v.(type) {
	case nil:
		sb.WriteString("None")
	case bool:
		if x {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case json.Number:
		sb.WriteString(string(x))
	case float64:
		sb.WriteString(pyFloat(x))
	case string:
		sb.WriteString(pyStr(x))
	case []byte:
		sb.WriteString(pyBytes(x))
	case time.Time:
		sb.WriteString(pyDatetime(x))
	case []any:
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteString(", ")
			}
			writeRepr(sb, e, depth+1)
		}
		sb.WriteByte(']')
	case tuple:
		sb.WriteByte('(')
		for i, e := range x {
			if i > 0 {
				sb.WriteString(", ")
			}
			writeRepr(sb, e, depth+1)
		}
		if len(x) == 1 {
			sb.WriteByte(',')
		}
		sb.WriteByte(')')
	case map[string]any:
		sb.WriteByte('{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyStr(k))
			sb.WriteString(": ")
			writeRepr(sb, x[k], depth+1)
		}
		sb.WriteByte('}')
	case object:
		sb.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyStr(m.key))
			sb.WriteString(": ")
			writeRepr(sb, m.value, depth+1)
		}
		sb.WriteByte('}')
	case ExceptionInfo:
		sb.WriteString(x.Repr())
	default:
		fmt.Fprintf(sb, "%v", x)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pyFloat is float.__repr__: the shortest digits that read back to the
// same float, positional when the decimal exponent is in (-4, 16], else
// scientific with at least two exponent digits; always a '.' or 'e' so
// it reads back as a float.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expPart, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expPart)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // value = 0.DIGITS × 10^decpt
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	out := sign + digits[:1]
	if len(digits) > 1 {
		out += "." + digits[1:]
	}
	e := decpt - 1
	esign := "+"
	if e < 0 {
		esign, e = "-", -e
	}
	return fmt.Sprintf("%se%s%02d", out, esign, e)
}

// pyStr is str.__repr__.
func pyStr(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var sb strings.Builder
	sb.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r < 0x7f:
			sb.WriteRune(r)
		case pyPrintable(r):
			sb.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			fmt.Fprintf(&sb, `\U%08x`, r)
		}
	}
	sb.WriteRune(quote)
	return sb.String()
}

// pyPrintable is str.isprintable() for one character: not in categories
// Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (space aside). Go's unicode.IsPrint is
// the same set, up to the Unicode versions of the two runtimes.
func pyPrintable(r rune) bool {
	return r != utf8.RuneError && unicode.IsPrint(r)
}

// pyBytes is bytes.__repr__.
func pyBytes(b []byte) string {
	quote := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		quote = '"'
	}
	var sb strings.Builder
	sb.WriteByte('b')
	sb.WriteByte(quote)
	for _, c := range b {
		switch {
		case c == quote || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}

// pyDatetime is datetime.__repr__ of an aware datetime.
func pyDatetime(t time.Time) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "datetime.datetime(%d, %d, %d, %d, %d", t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute())
	us := t.Nanosecond() / 1000
	if t.Second() != 0 || us != 0 {
		fmt.Fprintf(&sb, ", %d", t.Second())
	}
	if us != 0 {
		fmt.Fprintf(&sb, ", %d", us)
	}
	_, off := t.Zone()
	if off == 0 {
		sb.WriteString(", tzinfo=datetime.timezone.utc)")
		return sb.String()
	}
	// timedelta's repr normalises to days >= -1 and 0 <= seconds < 86400.
	days, secs := 0, off
	if secs < 0 {
		days, secs = -1, secs+86400
	}
	if days != 0 {
		fmt.Fprintf(&sb, ", tzinfo=datetime.timezone(datetime.timedelta(days=%d, seconds=%d)))", days, secs)
	} else {
		fmt.Fprintf(&sb, ", tzinfo=datetime.timezone(datetime.timedelta(seconds=%d)))", secs)
	}
	return sb.String()
}

// SafeRepr is celery.utils.saferepr.saferepr(v, maxlen): the repr celery
// puts in argsrepr, kwargsrepr and the result of task-succeeded events.
// Unlike repr(), strings are always in single quotes with only ' escaped
// (newlines and non-ASCII stay as they are), containers deeper than three
// levels print as [...], and output is cut near maxlen characters with
// "..." and ", ...", keeping the closing brackets. maxlen <= 0 means no
// limit.
func SafeRepr(v any, maxlen int) string {
	n, err := normalize(v, 0)
	if err != nil {
		return fmt.Sprintf("<Unrepresentable %T: %v>", v, err)
	}
	var toks []srToken
	toks = flattenSafe(toks, n, 0)

	limited := maxlen > 0
	remaining := maxlen
	var sb strings.Builder
	var open []string // closers of the containers entered so far
	for _, t := range toks {
		if limited && remaining <= 0 {
			// saferepr drops the token that tripped the limit (even a
			// closing bracket) and then prints the closers still pending.
			sb.WriteString(", ...")
			switch t.kind {
			case srOpen:
				open = append(open, t.closer)
			case srClose:
				open = open[:len(open)-1]
			}
			for i := len(open) - 1; i >= 0; i-- {
				sb.WriteString(open[i])
			}
			return sb.String()
		}
		var val string
		switch t.kind {
		case srOpen:
			val = t.text
			open = append(open, t.closer)
		case srClose:
			val = t.text
			open = open[:len(open)-1]
		case srLiteral:
			val = t.text
		case srQuoted:
			val = formatChars(t.text, budget(limited, remaining))
		case srBytes:
			val = formatBinary(t.bytes, budget(limited, remaining))
		case srText:
			val = truncate(t.text, budget(limited, remaining))
		}
		sb.WriteString(val)
		if limited {
			remaining -= utf8.RuneCountInString(val)
		}
	}
	return sb.String()
}

func budget(limited bool, remaining int) int {
	if !limited {
		return 0
	}
	return remaining
}

type srKind int

const (
	srOpen    srKind = iota // [ { (
	srClose                 // ] } ) ,)
	srLiteral               // ", " and ": "
	srQuoted                // a str, or a dict key
	srBytes                 // a bytes value
	srText                  // numbers, None, True, [...], datetime reprs
)

type srToken struct {
	kind   srKind
	text   string
	closer string
	bytes  []byte
}

const safeMaxLevels = 3

// flattenSafe lists the tokens celery's reprstream yields, in order.
func flattenSafe(toks []srToken, v any, level int) []srToken {
	container := func(open, close string, n int, each func(i int)) []srToken {
		if level >= safeMaxLevels {
			return append(toks, srToken{kind: srText, text: open + "..." + close})
		}
		toks = append(toks, srToken{kind: srOpen, text: open, closer: close})
		for i := 0; i < n; i++ {
			if i > 0 {
				toks = append(toks, srToken{kind: srLiteral, text: ", "})
			}
			each(i)
		}
		return append(toks, srToken{kind: srClose, text: close})
	}
	switch x := v.(type) {
	case []any:
		return container("[", "]", len(x), func(i int) { toks = flattenSafe(toks, x[i], level+1) })
	case tuple:
		closer := ")"
		if len(x) == 1 {
			closer = ",)"
		}
		return container("(", closer, len(x), func(i int) { toks = flattenSafe(toks, x[i], level+1) })
	case map[string]any:
		keys := sortedKeys(x)
		return container("{", "}", len(keys), func(i int) {
			toks = append(toks, srToken{kind: srQuoted, text: keys[i]}, srToken{kind: srLiteral, text: ": "})
			toks = flattenSafe(toks, x[keys[i]], level+1)
		})
	case object:
		return container("{", "}", len(x), func(i int) {
			toks = append(toks, srToken{kind: srQuoted, text: x[i].key}, srToken{kind: srLiteral, text: ": "})
			toks = flattenSafe(toks, x[i].value, level+1)
		})
	case string:
		return append(toks, srToken{kind: srQuoted, text: x})
	case []byte:
		return append(toks, srToken{kind: srBytes, bytes: x})
	}
	return append(toks, srToken{kind: srText, text: Repr(v)})
}

// truncate is celery.utils.text.truncate: at or past maxlen characters,
// cut at maxlen, back to the last space, and add "...".
func truncate(s string, maxlen int) string {
	if maxlen <= 0 || utf8.RuneCountInString(s) < maxlen {
		return s
	}
	r := []rune(s)[:maxlen]
	cut := string(r)
	if i := strings.LastIndexByte(cut, ' '); i >= 0 {
		cut = cut[:i]
	}
	return cut + "..."
}

func formatChars(s string, maxlen int) string {
	return "'" + strings.ReplaceAll(truncate(s, maxlen), "'", `\'`) + "'"
}

// formatBinary is saferepr's bytes form: the bytes decoded as UTF-8, or
// as hex when they are not, with no escaping at all.
func formatBinary(b []byte, maxlen int) string {
	show := func(b []byte) string {
		if utf8.Valid(b) {
			return string(b)
		}
		return fmt.Sprintf("%x", b)
	}
	if maxlen > 0 && len(b) > maxlen {
		return "b'" + show(b[:maxlen]) + "...'"
	}
	return "b'" + show(b) + "'"
}
