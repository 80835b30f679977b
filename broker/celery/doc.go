// Package celery is the Celery wire codec: task messages (protocol 1, 2
// and the hybrid), result payloads, events and pidbox remote control, as
// celery 5.2.6 / kombu 5.2.4 / py-amqp 5.1.1 put them on AMQP. It does no
// I/O: it turns amqp091-go Deliveries into values and values into
// Publishings, and the caller routes them.
//
// # Where each concern lives
//
//   - message.go: Message, Signature, Embed and the standard names.
//   - decode.go: Decode and the refusal reasons (ErrMalformed).
//   - encode.go: Encode, protocol 2 exactly as as_task_v2 writes it.
//   - jsonvalue.go: kombu's JSON, both the plain 5.2 style and 5.3's
//     {"__type__", "__value__"} typed values.
//   - table.go: AMQP header tables to and from the value model.
//   - isotime.go: ISO-8601 as celery writes and reads it.
//   - repr.go: Python's repr() and celery's saferepr().
//   - result.go, event.go, control.go: backends, events, pidbox.
//
// # Decoded values
//
// Args, Kwargs, Headers and everything nested in them hold only these Go
// types:
//
//   - nil, bool, string
//   - int64 for JSON integers that fit; json.Number (exact digits) for
//     the larger ones Python sends freely (2**70). Integers are never
//     float64, so ids and counters survive exactly.
//   - float64 for JSON numbers with a fraction or exponent, which is
//     what Python reads them as too; NaN and ±Infinity, which Python's
//     json writes, are accepted.
//   - []any and map[string]any
//   - time.Time for kombu 5.3 typed datetimes and dates (a date is
//     midnight UTC; a naive datetime is UTC; an offset is kept), and for
//     AMQP timestamp headers. Plain ISO strings (kombu 5.2) stay strings:
//     nothing tells them apart from other text.
//   - string for typed decimal (its digits), uuid (canonical form) and
//     time-of-day (ISO text, which is how kombu 5.2 sends it)
//   - []byte for typed bytes and base64, and AMQP byte-array headers
//
// Encoding accepts these plus the other Go integer, float, slice and map
// types, Signature, ExceptionInfo and structs (through encoding/json).
// Floats are written as Python prints them, so 1.0 stays a float for a
// Python reader; a time.Time is written as an ISO string (with Z for UTC,
// as kombu 5.2 does), which every kombu reads; []byte, which kombu 5.2
// cannot carry at all, is written in kombu 5.3's typed form.
//
// # Times
//
// Message.ETA and Expires are UTC. On the wire they are ISO-8601 strings
// with an offset; microseconds are always written with six digits, since
// celery 5.2's parser reads the fraction digits as a microsecond count.
package celery
