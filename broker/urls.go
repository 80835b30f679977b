package broker

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrBadURL is what ParseURLs returns, wrapped, for a broker URL it cannot
// use.
var ErrBadURL = errors.New("invalid URL")

// ParseURLs reads a broker URL as Celery's broker_url: one AMQP URL, or
// several separated by ';' (kombu's failover syntax), the nodes of one
// cluster, tried in turn. As in kombu, an entry after the first may be a
// bare host[:port] that takes the scheme, credentials, port and vhost from
// the first: "amqp://u:p@mq1:5672/farm;mq2;mq3:5673". Empty entries are
// skipped. The result is one full URL per node, in the given order.
func ParseURLs(s string) ([]string, error) {
	var out []string
	var first *url.URL
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if strings.Count(entry, "://") > 1 {
			return nil, fmt.Errorf("broker: %w in entry %d: separate several URLs with ';', as Celery does", ErrBadURL, len(out)+1)
		}
		full := entry
		if !strings.Contains(entry, "://") {
			if first == nil {
				return nil, fmt.Errorf("broker: %w: the first entry must be a full amqp:// URL", ErrBadURL)
			}
			var err error
			if full, err = inheritURL(first, entry); err != nil {
				return nil, err
			}
		}
		if _, err := amqp.ParseURI(full); err != nil {
			return nil, fmt.Errorf("broker: %w %q: %w", ErrBadURL, redactURL(full), err)
		}
		if first == nil {
			u, err := url.Parse(full)
			if err != nil {
				return nil, fmt.Errorf("broker: %w %q: %w", ErrBadURL, redactURL(full), err)
			}
			first = u
		}
		out = append(out, full)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("broker: %w: no URL given", ErrBadURL)
	}
	return out, nil
}

// inheritURL is first with its host (and port, if hostPort names one)
// replaced by hostPort, a bare entry of a failover list.
func inheritURL(first *url.URL, hostPort string) (string, error) {
	if strings.ContainsAny(hostPort, "@/?#") {
		// Not quoted back: it may hold a password.
		return "", fmt.Errorf("broker: %w: an entry without a scheme is a host[:port]; write credentials and vhost in a full amqp:// URL", ErrBadURL)
	}
	host, port := hostPort, first.Port()
	if h, p, err := net.SplitHostPort(hostPort); err == nil {
		host, port = h, p
	} else {
		host = strings.Trim(host, "[]")
	}
	if host == "" {
		return "", fmt.Errorf("broker: %w %q: no host", ErrBadURL, hostPort)
	}
	u := *first
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	return u.String(), nil
}

// redactURL hides the password for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}
