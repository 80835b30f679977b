package celery

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The goldens hold application headers as py-amqp serialises them. These
// helpers stand in for the frame code of amqp091-go v1.10.0, which is not
// exported: readWireTable yields exactly the Go types its readField does
// (so Decode is tested on what a Delivery really carries), and
// writeWireTable writes what its writeField does (so the Python
// cross-check reads what a Go publisher really sends).

func readWireTable(b []byte) (amqp.Table, error) {
	limit = int64(len(b))
	r := bytes.NewReader(b)
	t, err := readWireTableFrom(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the table", r.Len())
	}
	return t, nil
}

// limit caps lengths read from the frame, so fuzzed input cannot ask
// for gigabytes.
var limit int64

func checkLen(n int64) error {
	if n < 0 || n > limit {
		return fmt.Errorf("length %d exceeds the frame", n)
	}
	return nil
}

func readWireTableFrom(r io.Reader) (amqp.Table, error) {
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, err
	}
	if err := checkLen(int64(n)); err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	nested := bytes.NewReader(body)
	t := amqp.Table{}
	for nested.Len() > 0 {
		var kl uint8
		if err := binary.Read(nested, binary.BigEndian, &kl); err != nil {
			return nil, err
		}
		key := make([]byte, kl)
		if _, err := io.ReadFull(nested, key); err != nil {
			return nil, err
		}
		v, err := readWireField(nested)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		t[string(key)] = v
	}
	return t, nil
}

func readWireField(r io.Reader) (any, error) {
	var typ byte
	if err := binary.Read(r, binary.BigEndian, &typ); err != nil {
		return nil, err
	}
	read := func(v any) error { return binary.Read(r, binary.BigEndian, v) }
	switch typ {
	case 't':
		var v uint8
		err := read(&v)
		return v != 0, err
	case 'B':
		var v uint8
		err := read(&v)
		return v, err
	case 'b':
		var v int8
		err := read(&v)
		return v, err
	case 's':
		var v int16
		err := read(&v)
		return v, err
	case 'I':
		var v int32
		err := read(&v)
		return v, err
	case 'l':
		var v int64
		err := read(&v)
		return v, err
	case 'f':
		var v float32
		err := read(&v)
		return v, err
	case 'd':
		var v float64
		err := read(&v)
		return v, err
	case 'D':
		var v amqp.Decimal
		if err := read(&v.Scale); err != nil {
			return nil, err
		}
		err := read(&v.Value)
		return v, err
	case 'S':
		var n uint32
		if err := read(&n); err != nil {
			return nil, err
		}
		if err := checkLen(int64(n)); err != nil {
			return nil, err
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return string(b), err
	case 'A':
		var n uint32
		if err := read(&n); err != nil {
			return nil, err
		}
		lim := &io.LimitedReader{R: r, N: int64(n)}
		var arr []any // amqp091-go leaves an empty array nil
		for lim.N > 0 {
			v, err := readWireField(lim)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case 'T':
		var sec int64
		err := read(&sec)
		return time.Unix(sec, 0), err
	case 'F':
		return readWireTableFrom(r)
	case 'x':
		var n int32
		if err := read(&n); err != nil {
			return nil, err
		}
		if err := checkLen(int64(n)); err != nil {
			return nil, err
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	case 'V':
		return nil, nil
	}
	// 'L' (py-amqp's 64-bit int) lands here, as it does in amqp091-go.
	return nil, fmt.Errorf("field type %q: amqp091-go cannot read it", typ)
}

func writeWireTable(t amqp.Table) ([]byte, error) {
	var buf bytes.Buffer
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf.WriteByte(byte(len(k)))
		buf.WriteString(k)
		if err := writeWireField(&buf, t[k]); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(buf.Len()))
	return append(out, buf.Bytes()...), nil
}

func writeWireField(w *bytes.Buffer, v any) error {
	be := binary.BigEndian
	switch x := v.(type) {
	case bool:
		w.WriteByte('t')
		if x {
			w.WriteByte(1)
		} else {
			w.WriteByte(0)
		}
	case byte:
		w.Write([]byte{'B', x})
	case int8:
		w.Write([]byte{'b', byte(x)})
	case int16:
		w.WriteByte('s')
		w.Write(be.AppendUint16(nil, uint16(x)))
	case int: // amqp091-go writes a Go int as 32 bits, truncating
		w.WriteByte('I')
		w.Write(be.AppendUint32(nil, uint32(x)))
	case int32:
		w.WriteByte('I')
		w.Write(be.AppendUint32(nil, uint32(x)))
	case int64:
		w.WriteByte('l')
		w.Write(be.AppendUint64(nil, uint64(x)))
	case float32:
		w.WriteByte('f')
		w.Write(be.AppendUint32(nil, math.Float32bits(x)))
	case float64:
		w.WriteByte('d')
		w.Write(be.AppendUint64(nil, math.Float64bits(x)))
	case amqp.Decimal:
		w.Write([]byte{'D', x.Scale})
		w.Write(be.AppendUint32(nil, uint32(x.Value)))
	case string:
		w.WriteByte('S')
		w.Write(be.AppendUint32(nil, uint32(len(x))))
		w.WriteString(x)
	case []any:
		var sec bytes.Buffer
		for _, e := range x {
			if err := writeWireField(&sec, e); err != nil {
				return err
			}
		}
		w.WriteByte('A')
		w.Write(be.AppendUint32(nil, uint32(sec.Len())))
		w.Write(sec.Bytes())
	case time.Time:
		w.WriteByte('T')
		w.Write(be.AppendUint64(nil, uint64(x.Unix())))
	case amqp.Table:
		b, err := writeWireTable(x)
		if err != nil {
			return err
		}
		w.WriteByte('F')
		w.Write(b)
	case []byte:
		w.WriteByte('x')
		w.Write(be.AppendUint32(nil, uint32(len(x))))
		w.Write(x)
	case nil:
		w.WriteByte('V')
	default:
		return fmt.Errorf("amqp091-go cannot write %T (ErrFieldType)", v)
	}
	return nil
}

// overTheWire passes a Publishing through the header encoding amqp091-go
// would use and back, as a consumer would receive it.
func overTheWire(pub amqp.Publishing) (amqp.Delivery, error) {
	raw, err := writeWireTable(pub.Headers)
	if err != nil {
		return amqp.Delivery{}, err
	}
	h, err := readWireTable(raw)
	if err != nil {
		return amqp.Delivery{}, err
	}
	return amqp.Delivery{
		Headers:         h,
		ContentType:     pub.ContentType,
		ContentEncoding: pub.ContentEncoding,
		DeliveryMode:    pub.DeliveryMode,
		Priority:        pub.Priority,
		CorrelationId:   pub.CorrelationId,
		ReplyTo:         pub.ReplyTo,
		Expiration:      pub.Expiration,
		Body:            pub.Body,
	}, nil
}
