package celery

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// localZone is where v1 messages with "utc": false place their naive times.
// A variable so tests can pin it.
var localZone = time.Local

// parseISODateTime reads the ISO-8601 forms celery and kombu write:
// YYYY-MM-DD, optionally followed by one separator character and
// HH:MM[:SS[.fraction]], optionally followed by Z or ±HH[:MM[:SS]] / ±HHMM.
// A time without an offset is placed in naive.
//
// celery 5.2's own parser (celery/utils/iso8601.py) reads the fraction
// digits as a count of microseconds, so ".5" becomes 5µs there; we read it
// as the half second the sender meant. Trailing text, which that parser
// ignores, is refused here: a date followed by garbage is not a date.
func parseISODateTime(s string, naive *time.Location) (time.Time, error) {
	p := isoScanner{s: s}
	year, ok := p.digits(4, 4)
	if !ok || !p.byte('-') {
		return time.Time{}, errors.New("want YYYY-MM-DD")
	}
	month, ok := p.digits(1, 2)
	if !ok || !p.byte('-') {
		return time.Time{}, errors.New("want YYYY-MM-DD")
	}
	day, ok := p.digits(1, 2)
	if !ok {
		return time.Time{}, errors.New("want YYYY-MM-DD")
	}
	var hour, minute, sec, nsec int
	loc := naive
	if p.more() && p.hasTimeAfterSeparator() {
		p.pos++ // any one separator, as celery's regex allows ('T' or ' ')
		hour, _ = p.digits(2, 2)
		if !p.byte(':') {
			return time.Time{}, errors.New("want HH:MM")
		}
		if minute, ok = p.digits(2, 2); !ok {
			return time.Time{}, errors.New("want HH:MM")
		}
		if p.byte(':') {
			if sec, ok = p.digits(2, 2); !ok {
				return time.Time{}, errors.New("want seconds after HH:MM:")
			}
			if p.byte('.') || p.byte(',') {
				start := p.pos
				for p.more() && isDigit(p.s[p.pos]) {
					p.pos++
				}
				frac := p.s[start:p.pos]
				if frac == "" {
					return time.Time{}, errors.New("empty fraction")
				}
				for len(frac) < 9 {
					frac += "0"
				}
				nsec, _ = strconv.Atoi(frac[:9])
			}
		}
		if p.more() {
			l, err := p.offset()
			if err != nil {
				return time.Time{}, err
			}
			loc = l
		}
	}
	if p.more() {
		return time.Time{}, fmt.Errorf("unexpected %q", p.s[p.pos:])
	}
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errors.New("field out of range")
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), nil
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

type isoScanner struct {
	s   string
	pos int
}

func (p *isoScanner) more() bool { return p.pos < len(p.s) }

func (p *isoScanner) byte(c byte) bool {
	if p.more() && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *isoScanner) digits(minN, maxN int) (int, bool) {
	start := p.pos
	for p.more() && p.pos-start < maxN && isDigit(p.s[p.pos]) {
		p.pos++
	}
	if p.pos-start < minN {
		return 0, false
	}
	n, _ := strconv.Atoi(p.s[start:p.pos])
	return n, true
}

func (p *isoScanner) hasTimeAfterSeparator() bool {
	rest := p.s[p.pos:]
	return len(rest) >= 6 && isDigit(rest[1]) && isDigit(rest[2]) && rest[3] == ':'
}

func (p *isoScanner) offset() (*time.Location, error) {
	if p.byte('Z') || p.byte('z') {
		return time.UTC, nil
	}
	sign := 1
	switch {
	case p.byte('+'):
	case p.byte('-'):
		sign = -1
	default:
		return nil, fmt.Errorf("unexpected %q", p.s[p.pos:])
	}
	h, ok := p.digits(2, 2)
	if !ok {
		return nil, errors.New("want ±HH:MM")
	}
	colon := p.byte(':')
	m, ok := p.digits(2, 2)
	if !ok && colon {
		return nil, errors.New("want ±HH:MM")
	}
	var sec int
	if ok && p.byte(':') {
		if sec, ok = p.digits(2, 2); !ok {
			return nil, errors.New("want ±HH:MM:SS")
		}
	}
	if h > 23 || m > 59 || sec > 59 {
		return nil, errors.New("offset out of range")
	}
	off := sign * (h*3600 + m*60 + sec)
	if off == 0 {
		return time.UTC, nil
	}
	return time.FixedZone("", off), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isoformat writes t as Python's datetime.isoformat() does for an aware
// datetime: microseconds only when non-zero and then always six digits
// (celery 5.2's parser misreads fewer), offset as ±HH:MM.
func isoformat(t time.Time) (string, error) {
	if y := t.Year(); y < 1 || y > 9999 {
		return "", fmt.Errorf("year %d is outside Python's datetime range", y)
	}
	b := make([]byte, 0, 32)
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		b = append(b, fmt.Sprintf("%06d", us)...)
	}
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	b = append(b, sign)
	b = append(b, fmt.Sprintf("%02d:%02d", off/3600, off/60%60)...)
	if off%60 != 0 {
		b = append(b, fmt.Sprintf(":%02d", off%60)...)
	}
	return string(b), nil
}

// naiveISOFormat is isoformat without the offset, as
// datetime.utcnow().isoformat() writes date_done.
func naiveISOFormat(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s
}

// kombuTime is how kombu's JSON encoder writes a datetime inside a body:
// isoformat with a zero offset spelled "Z".
func kombuTime(t time.Time) (string, error) {
	s, err := isoformat(t)
	if err != nil {
		return "", err
	}
	if n := len(s); n >= 6 && s[n-6:] == "+00:00" {
		s = s[:n-6] + "Z"
	}
	return s, nil
}
