package celery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxDepth bounds nesting. CPython's json gives up near its recursion limit
// (1000), so nothing a Python client can send is refused, and a hostile body
// cannot make decoding or Repr recurse without bound.
const maxDepth = 1000

// maxIntDigits mirrors CPython 3.11's int_max_str_digits: a Python worker
// refuses longer integer literals, and so do we.
const maxIntDigits = 4300

// parseJSON reads one JSON document the way kombu's json.loads does:
// CPython's json module (which also accepts NaN, Infinity and -Infinity,
// since json.dumps writes them) plus kombu >= 5.3's object hook for
// {"__type__": T, "__value__": V}.
func parseJSON(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("body is not valid UTF-8")
	}
	p := &jsonParser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.errorf("extra data after the JSON value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("bad JSON at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) literal(word string) bool {
	if bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested more than %d deep", maxDepth)
	}
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.string()
	case c == 't' && p.literal("true"):
		return true, nil
	case c == 'f' && p.literal("false"):
		return false, nil
	case c == 'n' && p.literal("null"):
		return nil, nil
	case c == 'N' && p.literal("NaN"):
		return math.NaN(), nil
	case c == 'I' && p.literal("Infinity"):
		return math.Inf(1), nil
	case c == '-' && p.literal("-Infinity"):
		return math.Inf(-1), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.errorf("unexpected character %q", p.data[p.pos])
}

func (p *jsonParser) object(depth int) (any, error) {
	p.pos++ // {
	obj := map[string]any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected a string key")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj[key] = v // a repeated key keeps the last value, as Python's dict does
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated object")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == '}' {
			p.pos++
			break
		}
		return nil, p.errorf("expected ',' or '}' in object")
	}
	if typed, ok, err := decodeTyped(obj); ok || err != nil {
		if err != nil {
			return nil, fmt.Errorf("bad JSON: %w", err)
		}
		return typed, nil
	}
	return obj, nil
}

func (p *jsonParser) array(depth int) (any, error) {
	p.pos++ // [
	arr := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated array")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == ']' {
			p.pos++
			return arr, nil
		}
		return nil, p.errorf("expected ',' or ']' in array")
	}
}

func (p *jsonParser) string() (string, error) {
	p.pos++ // opening quote
	var sb strings.Builder
	start := p.pos
	for {
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			sb.Write(p.data[start:p.pos])
			p.pos++
			return sb.String(), nil
		case c < 0x20:
			return "", p.errorf("control character %#x in string", c)
		case c != '\\':
			p.pos++
			continue
		}
		sb.Write(p.data[start:p.pos])
		p.pos++
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		esc := p.data[p.pos]
		p.pos++
		switch esc {
		case '"', '\\', '/':
			sb.WriteByte(esc)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// A pair becomes one code point; a lone surrogate (which
				// Python keeps, but a Go string cannot hold) becomes U+FFFD.
				if r < 0xdc00 && p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					r2, err := p.hex4()
					if err == nil && r2 >= 0xdc00 && r2 <= 0xdfff {
						r = utf16.DecodeRune(r, r2)
					} else {
						p.pos = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			sb.WriteRune(r)
		default:
			return "", p.errorf("invalid escape \\%c", esc)
		}
		start = p.pos
	}
}

func (p *jsonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.errorf("short \\u escape")
	}
	n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, p.errorf("invalid \\u escape")
	}
	p.pos += 4
	return rune(n), nil
}

func (p *jsonParser) number() (any, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if n := digits(); n == 0 {
		return nil, p.errorf("invalid number")
	} else if n > 1 && p.data[intStart] == '0' {
		// CPython reads "01" as 0 followed by garbage; so do we, by refusing.
		return nil, p.errorf("leading zero in number")
	}
	isFloat := false
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
		isFloat = true
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
		isFloat = true
	}
	text := string(p.data[start:p.pos])
	if isFloat {
		// Out-of-range values become ±Inf or 0, as float() does in Python.
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, p.errorf("invalid number %q", text)
		}
		return f, nil
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, nil
	}
	if len(strings.TrimPrefix(text, "-")) > maxIntDigits {
		return nil, p.errorf("integer with more than %d digits", maxIntDigits)
	}
	return json.Number(text), nil
}

// decodeTyped applies kombu >= 5.3's object hook: an object whose keys are
// exactly __type__ and __value__ is a typed value. kombu raises on a marker
// it does not know, so an unknown marker is an error here too.
func decodeTyped(obj map[string]any) (any, bool, error) {
	if len(obj) != 2 {
		return nil, false, nil
	}
	marker, ok := obj["__type__"]
	if !ok {
		return nil, false, nil
	}
	value, ok := obj["__value__"]
	if !ok {
		return nil, false, nil
	}
	t, _ := marker.(string)
	str, isStr := value.(string)
	switch t {
	case "datetime":
		if !isStr {
			break
		}
		tm, err := parseISODateTime(str, time.UTC)
		if err != nil {
			return nil, true, fmt.Errorf("typed datetime %q: %v", str, err)
		}
		return tm, true, nil
	case "date":
		if !isStr {
			break
		}
		tm, err := parseISODateTime(str, time.UTC)
		if err != nil {
			return nil, true, fmt.Errorf("typed date %q: %v", str, err)
		}
		y, m, d := tm.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), true, nil
	case "time":
		// A time of day has no Go type of its own; keep the ISO text, which
		// is exactly what kombu 5.2 sends for the same value.
		if !isStr {
			break
		}
		if !validTimeOfDay(str) {
			return nil, true, fmt.Errorf("typed time %q is not HH:MM[:SS[.ffffff]]", str)
		}
		return str, true, nil
	case "decimal":
		if !isStr {
			break
		}
		if !validDecimal(str) {
			return nil, true, fmt.Errorf("typed decimal %q is not a number", str)
		}
		return str, true, nil
	case "uuid":
		// kombu 5.3.0 wrote the hex string; later releases write
		// {"hex": ..., "version": ...}, decoded with uuid.UUID(**value).
		if m, ok := value.(map[string]any); ok {
			str, isStr = m["hex"].(string)
		}
		if !isStr {
			break
		}
		u, err := canonicalUUID(str)
		if err != nil {
			return nil, true, fmt.Errorf("typed uuid: %v", err)
		}
		return u, true, nil
	case "bytes":
		if !isStr {
			break
		}
		return []byte(str), true, nil
	case "base64":
		if !isStr {
			break
		}
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			return nil, true, fmt.Errorf("typed base64: %v", err)
		}
		return b, true, nil
	default:
		return nil, true, fmt.Errorf("unsupported typed value %q", fmt.Sprint(marker))
	}
	return nil, true, fmt.Errorf("typed %s value is a %s", t, typeName(value))
}

func canonicalUUID(s string) (string, error) {
	// uuid.UUID(hex) strips these before counting 32 hex digits.
	h := strings.NewReplacer("urn:", "", "uuid:", "", "{", "", "}", "", "-", "").Replace(s)
	if len(h) != 32 {
		return "", fmt.Errorf("%q is not 32 hex digits", s)
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return "", fmt.Errorf("%q is not hexadecimal", s)
		}
	}
	h = strings.ToLower(h)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func validDecimal(s string) bool {
	// decimal.Decimal(str) accepts surrounding space, underscores between
	// digits, a sign, an exponent, and the special values.
	t := strings.ReplaceAll(strings.TrimSpace(s), "_", "")
	switch strings.ToLower(strings.TrimLeft(t, "+-")) {
	case "inf", "infinity", "nan", "snan":
		return true
	}
	if t == "" || strings.ContainsAny(t, "xXpP") {
		return false
	}
	_, ok := new(big.Float).SetString(t)
	return ok
}

func validTimeOfDay(s string) bool {
	_, err := parseISODateTime("2000-01-01T"+s, time.UTC)
	return err == nil
}

// object is a JSON object whose keys are written in the given order. The
// codec writes celery's own dicts (body, embed, signatures, results) in the
// order Python builds them, so the bytes match for the same values; maps
// from callers are written with sorted keys.
type object []member

type member struct {
	key   string
	value any
}

// normalize turns a caller's Go value into the decoded value model:
// nil, bool, int64, json.Number, float64, string, []byte, time.Time, []any,
// map[string]any, plus object, tuple and ExceptionInfo. json.Marshaler and
// structs go through encoding/json and back.
func normalize(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested more than %d deep", maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, int64, float64, string, []byte, time.Time:
		return x, nil
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return x, nil
		}
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return nil, fmt.Errorf("json.Number %q is not a number", string(x))
		}
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint:
		return normUint(uint64(x)), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		return normUint(x), nil
	case float32:
		return float64(x), nil
	case *big.Int:
		if x == nil {
			return nil, nil
		}
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return json.Number(x.String()), nil
	case *time.Time:
		if x == nil {
			return nil, nil
		}
		return *x, nil
	case amqp.Decimal:
		return amqpDecimalString(x), nil
	case ExceptionInfo, tuple, object:
		return normalizeNested(x, depth)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		return normalizeMap(x, depth)
	case amqp.Table:
		return normalizeMap(x, depth)
	case json.Marshaler:
		return viaJSON(x)
	}
	return normalizeReflect(v, depth)
}

func normUint(u uint64) any {
	if u <= math.MaxInt64 {
		return int64(u)
	}
	return json.Number(strconv.FormatUint(u, 10))
}

func normalizeMap(m map[string]any, depth int) (any, error) {
	out := make(map[string]any, len(m))
	for k, e := range m {
		n, err := normalize(e, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

func normalizeNested(v any, depth int) (any, error) {
	switch x := v.(type) {
	case ExceptionInfo:
		msg, err := normalize(x.messageList(), depth+1)
		if err != nil {
			return nil, err
		}
		return ExceptionInfo{Type: x.Type, Module: x.Module, Message: msg.([]any)}, nil
	case tuple:
		out, err := normalize([]any(x), depth)
		if err != nil {
			return nil, err
		}
		return tuple(out.([]any)), nil
	case object:
		out := make(object, len(x))
		for i, m := range x {
			n, err := normalize(m.value, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", m.key, err)
			}
			out[i] = member{m.key, n}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected %T", v)
}

func normalizeReflect(v any, depth int) (any, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return normalize(rv.Elem().Interface(), depth)
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil, nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			n, err := normalize(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map with %s keys: JSON keys are strings", rv.Type().Key())
		}
		if rv.IsNil() {
			return nil, nil
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			n, err := normalize(it.Value().Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[it.Key().String()] = n
		}
		return out, nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return normUint(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Struct:
		return viaJSON(v)
	}
	return nil, fmt.Errorf("cannot send a %T as JSON", v)
}

func viaJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return parseJSON(b)
}

// writeJSON appends v (already normalised) as CPython's json.dumps writes
// it with kombu's defaults: ", " and ": " separators, ASCII-only output
// with \uXXXX escapes, floats as repr() prints them (so 1.0 stays a float
// for Python) and NaN/Infinity as bare words.
func writeJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case json.Number:
		return append(b, x...), nil
	case float64:
		switch {
		case math.IsNaN(x):
			return append(b, "NaN"...), nil
		case math.IsInf(x, 1):
			return append(b, "Infinity"...), nil
		case math.IsInf(x, -1):
			return append(b, "-Infinity"...), nil
		}
		return append(b, pyFloat(x)...), nil
	case string:
		return appendJSONString(b, x), nil
	case time.Time:
		s, err := kombuTime(x)
		if err != nil {
			return nil, err
		}
		return appendJSONString(b, s), nil
	case []byte:
		// kombu 5.2 cannot send bytes at all; kombu >= 5.3's form is the only
		// one that brings them back as bytes, so that is what we write.
		if utf8.Valid(x) {
			return writeJSON(b, object{{"__type__", "bytes"}, {"__value__", string(x)}})
		}
		return writeJSON(b, object{{"__type__", "base64"}, {"__value__", base64.StdEncoding.EncodeToString(x)}})
	case []any:
		return writeArray(b, x)
	case tuple:
		return writeArray(b, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		obj := make(object, len(keys))
		for i, k := range keys {
			obj[i] = member{k, x[k]}
		}
		return writeJSON(b, obj)
	case object:
		b = append(b, '{')
		for i, m := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendJSONString(b, m.key)
			b = append(b, ": "...)
			var err error
			if b, err = writeJSON(b, m.value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case ExceptionInfo:
		return writeJSON(b, x.object())
	}
	return nil, fmt.Errorf("cannot write %T as JSON", v)
}

func writeArray[S ~[]any](b []byte, x S) ([]byte, error) {
	b = append(b, '[')
	for i, e := range x {
		if i > 0 {
			b = append(b, ", "...)
		}
		var err error
		if b, err = writeJSON(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r < 0x20 || (r > 0x7e && r < 0x10000):
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		case r >= 0x10000:
			r1, r2 := utf16.EncodeRune(r)
			for _, u := range []rune{r1, r2} {
				b = append(b, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
			}
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

// marshalValue normalises and writes v.
func marshalValue(v any) ([]byte, error) {
	n, err := normalize(v, 0)
	if err != nil {
		return nil, err
	}
	return writeJSON(nil, n)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int64, json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	case time.Time:
		return "datetime"
	case []byte:
		return "bytes"
	}
	return fmt.Sprintf("%T", v)
}
