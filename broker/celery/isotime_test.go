package celery

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestParseISODateTime(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2024-05-06T07:08:09.123456+00:00", want: time.Date(2024, 5, 6, 7, 8, 9, 123456000, utc)},
		{in: "2024-05-06T07:08:09Z", want: time.Date(2024, 5, 6, 7, 8, 9, 0, utc)},
		{in: "2024-05-06 07:08:09", want: time.Date(2024, 5, 6, 7, 8, 9, 0, utc)},
		{in: "2024-05-06T07:08", want: time.Date(2024, 5, 6, 7, 8, 0, 0, utc)},
		{in: "2024-05-06", want: time.Date(2024, 5, 6, 0, 0, 0, 0, utc)},
		{in: "2024-5-6T07:08:09", want: time.Date(2024, 5, 6, 7, 8, 9, 0, utc)},
		{in: "2024-05-06T07:08:09.5", want: time.Date(2024, 5, 6, 7, 8, 9, 500000000, utc)},
		{in: "2024-05-06T07:08:09.1234567891", want: time.Date(2024, 5, 6, 7, 8, 9, 123456789, utc)},
		{in: "2024-05-06T07:08:09-05:30", want: time.Date(2024, 5, 6, 12, 38, 9, 0, utc)},
		{in: "2024-05-06T07:08:09+0200", want: time.Date(2024, 5, 6, 5, 8, 9, 0, utc)},
		{in: "2024-05-06T07:08:09+02", want: time.Date(2024, 5, 6, 5, 8, 9, 0, utc)},
		{in: "", bad: true},
		{in: "2024", bad: true},
		{in: "2024-05", bad: true},
		{in: "0000-01-01", bad: true},
		{in: "2023-02-29", bad: true},
		{in: "2024-05-06T25:00:00", bad: true},
		{in: "2024-05-06T07:08:09 nonsense", bad: true},
		{in: "2024-05-06T07:08:09.", bad: true},
		{in: "2024-05-06T07:08:09+5", bad: true},
	}
	for _, tt := range tests {
		got, err := parseISODateTime(tt.in, time.UTC)
		switch {
		case tt.bad && err == nil:
			t.Errorf("%q parsed as %v", tt.in, got)
		case !tt.bad && err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case !tt.bad && !got.Equal(tt.want):
			t.Errorf("%q = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestISOFormat(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "2024-05-06T07:08:09+00:00"},
		{time.Date(2024, 5, 6, 7, 8, 9, 500000000, time.UTC), "2024-05-06T07:08:09.500000+00:00"},
		{time.Date(2024, 5, 6, 7, 8, 9, 999, time.UTC), "2024-05-06T07:08:09+00:00"},
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", -(3*3600+30*60))), "2024-05-06T07:08:09-03:30"},
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", 3600+1)), "2024-05-06T07:08:09+01:00:01"},
	}
	for _, tt := range tests {
		if got, err := isoformat(tt.in); err != nil || got != tt.want {
			t.Errorf("isoformat(%v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := isoformat(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Error("year 0 formatted")
	}
	if got := naiveISOFormat(time.Date(2024, 5, 6, 9, 8, 10, 654321000, time.FixedZone("", 7200))); got != "2024-05-06T07:08:10.654321" {
		t.Errorf("naiveISOFormat = %s", got)
	}
}

// TestToAMQPWidths checks the integer widths written into headers: int32
// where py-amqp would write 'I', int64 beyond (never a Go int, which
// amqp091-go truncates to 32 bits).
func TestToAMQPWidths(t *testing.T) {
	tb, err := toTable(map[string]any{
		"small": 7, "neg": -7, "edge": int64(1<<31 - 1), "big": int64(1 << 31), "u": uint64(1 << 40),
		"nested": map[string]any{"n": 1}, "list": []int{1}, "f": float32(1.5), "nil": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := amqp.Table{
		"small": int32(7), "neg": int32(-7), "edge": int32(1<<31 - 1), "big": int64(1 << 31), "u": int64(1 << 40),
		"nested": amqp.Table{"n": int32(1)}, "list": []any{int32(1)}, "f": 1.5, "nil": nil,
	}
	for _, d := range diffTables(tb, want) {
		t.Error(d)
	}
	if err := tb.Validate(); err != nil {
		t.Errorf("amqp091-go refuses the table: %v", err)
	}
}
