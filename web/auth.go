package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
)

// tokenSet is the API tokens in force. It is swapped whole when the
// tokens file is reloaded, so a request sees either the old set or the new.
type tokenSet struct {
	hashes [][sha256.Size]byte
}

func newTokenSet(tokens []string) *tokenSet {
	ts := &tokenSet{}
	for _, t := range tokens {
		ts.hashes = append(ts.hashes, sha256.Sum256([]byte(t)))
	}
	return ts
}

// match compares the presented token with every configured one in
// constant time. Hashing first makes the comparison independent of the
// tokens' lengths too, and every token is compared so the time does not
// tell which one matched. The result is the token's identity for rate
// limits and idempotency keys: a hash prefix, never the token itself.
func (ts *tokenSet) match(presented string) (id string, ok bool) {
	h := sha256.Sum256([]byte(presented))
	found := 0
	for _, want := range ts.hashes {
		found |= subtle.ConstantTimeCompare(h[:], want[:])
	}
	if found != 1 {
		return "", false
	}
	return hex.EncodeToString(h[:8]), true
}

// authenticator checks credentials: "Authorization: Bearer TOKEN" for
// API clients, or HTTP Basic with the token as the password (any user
// name), so a person can open the status page in a browser, which asks for
// it and sends it again for the page's images.
type authenticator struct {
	tokens atomic.Pointer[tokenSet]
}

func (a *authenticator) set(tokens []string) { a.tokens.Store(newTokenSet(tokens)) }

func (a *authenticator) check(r *http.Request) (id string, ok bool) {
	h := r.Header.Get("Authorization")
	var presented string
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "bearer "):
		presented = strings.TrimSpace(h[7:])
	default:
		_, pass, basic := r.BasicAuth()
		if !basic {
			return "", false
		}
		presented = pass
	}
	if presented == "" {
		return "", false
	}
	return a.tokens.Load().match(presented)
}
