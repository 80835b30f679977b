package broker

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// --broker takes what Celery's broker_url takes: the nodes of a cluster
// separated by ';', later entries possibly bare hosts that inherit the
// rest from the first.
func TestParseURLs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		bad  string // part of the error, when the list is refused
	}{
		{name: "one URL", in: "amqp://u:p@mq1:5672/farm",
			want: []string{"amqp://u:p@mq1:5672/farm"}},
		{name: "two full URLs", in: "amqp://u:p@h1:5701//;amqp://v:q@h2:5702/other",
			want: []string{"amqp://u:p@h1:5701//", "amqp://v:q@h2:5702/other"}},
		{name: "spaces and empty entries", in: " amqp://h1//; ;amqp://h2//; ",
			want: []string{"amqp://h1//", "amqp://h2//"}},
		{name: "bare hosts inherit credentials, port and vhost", in: "amqp://u:p@mq1:5673/farm;mq2;mq3:5674",
			want: []string{"amqp://u:p@mq1:5673/farm", "amqp://u:p@mq2:5673/farm", "amqp://u:p@mq3:5674/farm"}},
		{name: "bare host without a port in the first", in: "amqps://u:p@mq1/%2F;mq2",
			want: []string{"amqps://u:p@mq1/%2F", "amqps://u:p@mq2/%2F"}},
		{name: "bare IPv6 host", in: "amqp://u:p@127.0.0.1:5701//;[::1]:5702;::1",
			want: []string{"amqp://u:p@127.0.0.1:5701//", "amqp://u:p@[::1]:5702//", "amqp://u:p@[::1]:5701//"}},
		{name: "nothing", in: " ; ", bad: "no URL"},
		{name: "bare host first", in: "mq1;amqp://mq2//", bad: "first entry"},
		{name: "bare entry with credentials", in: "amqp://mq1//;u:secret@mq2", bad: "host[:port]"},
		{name: "not AMQP", in: "amqp://mq1//;http://mq2/", bad: "invalid URL"},
		{name: "commas are not kombu's separator", in: "amqp://u:secret@mq1//,amqp://u:secret@mq2//", bad: "separate several URLs with ';'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURLs(tt.in)
			if tt.bad != "" {
				if err == nil || !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("ParseURLs(%q) = %v, %v; want an ErrBadURL saying %q", tt.in, got, err, tt.bad)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseURLs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
