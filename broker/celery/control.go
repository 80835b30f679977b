package celery

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ControlRequest is a remote-control command from kombu's pidbox Mailbox,
// as received on a worker's PidboxQueue.
type ControlRequest struct {
	Method    string
	Arguments map[string]any // never nil after DecodeControl
	// Destination lists the nodes the command is for; empty means every
	// node, unless Pattern and Matcher select some.
	Destination      []string
	Pattern, Matcher string // Matcher is "glob" or "pcre"
	// Ticket and the reply route are set for calls, absent for casts.
	Ticket                         string
	ReplyExchange, ReplyRoutingKey string
	Clock                          uint64     // the sender's Lamport clock
	Expires                        *time.Time // header expires; nil when 0/absent
}

// WantsReply reports whether the sender waits for an answer: kombu's Node
// replies when the request has a reply_to, and only then.
func (r *ControlRequest) WantsReply() bool {
	return r.ReplyExchange != "" || r.ReplyRoutingKey != ""
}

// DecodeControl reads a pidbox request. Errors wrap ErrMalformed.
func DecodeControl(d amqp.Delivery) (req *ControlRequest, err error) {
	defer func() {
		if r := recover(); r != nil {
			req, err = nil, malformed("internal decoding error: %v", r)
		}
	}()
	if err := checkContent(d.ContentType, d.ContentEncoding, d.Headers); err != nil {
		return nil, err
	}
	headers, err := fromTable(d.Headers)
	if err != nil {
		return nil, malformed("%v", err)
	}
	v, err := parseJSON(d.Body)
	if err != nil {
		return nil, malformed("%v", err)
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("control body is %s, want an object", describe(v))
	}
	r := &ControlRequest{}
	if r.Method, err = headerString(body, "method"); err != nil {
		return nil, err
	}
	if r.Method == "" {
		return nil, malformed("control request without a method")
	}
	if r.Arguments, err = kwargsMap(body["arguments"], "arguments"); err != nil {
		return nil, err
	}
	switch dst := body["destination"].(type) {
	case nil:
	case string: // not what kombu sends (it insists on a list); read it as one node
		r.Destination = []string{dst}
	case []any:
		for i, e := range dst {
			s, ok := e.(string)
			if !ok {
				return nil, malformed("destination[%d] is %s, want a node name", i, describe(e))
			}
			r.Destination = append(r.Destination, s)
		}
	default:
		return nil, malformed("destination is %s, want a list of node names", describe(body["destination"]))
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"pattern", &r.Pattern}, {"matcher", &r.Matcher}, {"ticket", &r.Ticket}} {
		if *f.dst, err = headerString(body, f.key); err != nil {
			return nil, err
		}
	}
	switch rt := body["reply_to"].(type) {
	case nil:
	case map[string]any:
		if r.ReplyExchange, err = headerString(rt, "exchange"); err != nil {
			return nil, err
		}
		if r.ReplyRoutingKey, err = headerString(rt, "routing_key"); err != nil {
			return nil, err
		}
	default:
		return nil, malformed("reply_to is %s, want {exchange, routing_key}", describe(body["reply_to"]))
	}
	switch c := headers["clock"].(type) {
	case int64:
		if c > 0 {
			r.Clock = uint64(c)
		}
	case float64:
		if c > 0 && c < math.MaxInt64 {
			r.Clock = uint64(c)
		}
	}
	var exp float64
	switch e := headers["expires"].(type) {
	case int64:
		exp = float64(e)
	case float64:
		exp = e
	}
	if exp > 0 && exp < 1e12 {
		sec, frac := math.Modf(exp)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
		r.Expires = &t
	}
	return r, nil
}

// For reports whether the node called hostname should run the request,
// as kombu's Node.handle_message decides: a non-empty destination lists
// the nodes; otherwise a pattern applies only together with a matcher
// ("glob": fnmatch, "pcre": re.match, anchored at the start only); with
// neither, every node runs it. An unknown matcher or a pattern that does
// not compile selects no node (kombu raises).
func (r *ControlRequest) For(hostname string) bool {
	if len(r.Destination) > 0 {
		for _, d := range r.Destination {
			if d == hostname {
				return true
			}
		}
		return false
	}
	if r.Pattern != "" && r.Matcher != "" {
		switch r.Matcher {
		case "glob":
			return fnmatch(hostname, r.Pattern)
		case "pcre":
			re, err := regexp.Compile(`^(?:` + r.Pattern + `)`)
			return err == nil && re.MatchString(hostname)
		}
		return false
	}
	return true
}

// EncodeControl writes a request as kombu's Mailbox._publish does (the Go
// side of celery's control client): publish it to PidboxExchange (fanout)
// with an empty routing key. Headers carry clock and expires (Unix seconds
// as a float, 0 for none).
func EncodeControl(r *ControlRequest) (amqp.Publishing, error) {
	if r == nil || r.Method == "" {
		return amqp.Publishing{}, errors.New("celery: control request without a method")
	}
	var dest any
	if r.Destination != nil {
		l := make([]any, len(r.Destination))
		for i, d := range r.Destination {
			l[i] = d
		}
		dest = l
	}
	body := object{
		{"method", r.Method},
		{"arguments", orEmpty(r.Arguments)},
		{"destination", dest},
		{"pattern", nilIfEmpty(r.Pattern)},
		{"matcher", nilIfEmpty(r.Matcher)},
	}
	if r.Ticket != "" || r.WantsReply() {
		body = append(body,
			member{"ticket", r.Ticket},
			member{"reply_to", object{{"exchange", r.ReplyExchange}, {"routing_key", r.ReplyRoutingKey}}})
	}
	b, err := marshalValue(body)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode control request: %w", err)
	}
	var expires any = int32(0)
	if r.Expires != nil {
		expires = float64(r.Expires.UnixNano()) / 1e9
	}
	clock, err := toAMQP(clockValue(r.Clock))
	if err != nil {
		return amqp.Publishing{}, err
	}
	return amqp.Publishing{
		Headers:         amqp.Table{"clock": clock, "expires": expires},
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Persistent, // kombu publishes by exchange name, so the producer default applies
		Body:            b,
	}, nil
}

// EncodeControlReply is a node's answer, as Mailbox._publish_reply sends
// it: body {hostname: reply}, headers {ticket, clock}, transient. Publish
// it to the request's ReplyExchange with its ReplyRoutingKey.
func EncodeControlReply(hostname, ticket string, clock uint64, reply any) (amqp.Publishing, error) {
	b, err := marshalValue(map[string]any{hostname: reply})
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("celery: encode control reply: %w", err)
	}
	c, err := toAMQP(clockValue(clock))
	if err != nil {
		return amqp.Publishing{}, err
	}
	return amqp.Publishing{
		Headers:         amqp.Table{"ticket": nilIfEmpty(ticket), "clock": c},
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Transient,
		Body:            b,
	}, nil
}

func clockValue(c uint64) any {
	if c > math.MaxInt64 {
		c = math.MaxInt64
	}
	return int64(c)
}

// fnmatch is Python's fnmatch.fnmatch on POSIX (case-sensitive): '*' and
// '?' match any character including '/', "[...]" is a set ("[!...]"
// negates, a leading ']' is literal), and a '[' without its ']' is a
// literal '['. There is no backslash escape.
func fnmatch(name, pattern string) bool {
	toks := globTokens(pattern)
	n := []rune(name)
	// Iterative matching with backtracking to the last '*'.
	ti, ni := 0, 0
	starT, starN := -1, 0
	for ni < len(n) {
		if ti < len(toks) {
			t := toks[ti]
			if t.star {
				starT, starN = ti, ni
				ti++
				continue
			}
			if t.matches(n[ni]) {
				ti++
				ni++
				continue
			}
		}
		if starT < 0 {
			return false
		}
		starN++
		ti, ni = starT+1, starN
	}
	for ti < len(toks) && toks[ti].star {
		ti++
	}
	return ti == len(toks)
}

type globToken struct {
	star    bool
	any     bool
	literal rune
	set     *globSet
}

type globSet struct {
	negate bool
	ranges [][2]rune
}

func (t globToken) matches(r rune) bool {
	switch {
	case t.any:
		return true
	case t.set != nil:
		in := false
		for _, rg := range t.set.ranges {
			if r >= rg[0] && r <= rg[1] {
				in = true
				break
			}
		}
		return in != t.set.negate
	}
	return r == t.literal
}

// globTokens follows fnmatch.translate's reading of the pattern.
func globTokens(pattern string) []globToken {
	p := []rune(pattern)
	var toks []globToken
	for i := 0; i < len(p); {
		c := p[i]
		i++
		switch c {
		case '*':
			if len(toks) == 0 || !toks[len(toks)-1].star {
				toks = append(toks, globToken{star: true})
			}
		case '?':
			toks = append(toks, globToken{any: true})
		case '[':
			j := i
			if j < len(p) && p[j] == '!' {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) {
				toks = append(toks, globToken{literal: '['})
				continue
			}
			stuff := p[i:j]
			i = j + 1
			switch {
			case len(stuff) == 0:
				// An empty set matches nothing (translate writes (?!)).
				toks = append(toks, globToken{set: &globSet{}})
			case len(stuff) == 1 && stuff[0] == '!':
				toks = append(toks, globToken{any: true})
			default:
				set := &globSet{}
				if stuff[0] == '!' {
					set.negate = true
					stuff = stuff[1:]
				}
				for k := 0; k < len(stuff); k++ {
					lo := stuff[k]
					if k+2 < len(stuff) && stuff[k+1] == '-' {
						set.ranges = append(set.ranges, [2]rune{lo, stuff[k+2]})
						k += 2
						continue
					}
					set.ranges = append(set.ranges, [2]rune{lo, lo})
				}
				toks = append(toks, globToken{set: set})
			}
		default:
			toks = append(toks, globToken{literal: c})
		}
	}
	return toks
}
