package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/renderfarm/renderfarm/broker"
	"github.com/renderfarm/renderfarm/broker/celery"
)

// ResultBackend stores task states where Celery clients look for them.
type ResultBackend interface {
	Store(ctx context.Context, req *celery.Message, r celery.Result) error
}

// RPCBackend is Celery's rpc:// backend: each state is a message to the
// reply queue the client named in the request.
type RPCBackend struct{ Conn Publisher }

func (b RPCBackend) Store(ctx context.Context, req *celery.Message, r celery.Result) error {
	if req.ReplyTo == "" {
		return nil // the client asked for no result
	}
	pub, err := celery.EncodeRPCResult(r, req)
	if err != nil {
		return fmt.Errorf("encoding result of %s: %w", req.ID, err)
	}
	err = b.Conn.Publish(ctx, "", req.ReplyTo, pub)
	// The client's result queue is gone (it stopped waiting): nobody
	// can read the result, so there is nothing to keep.
	if errors.Is(err, broker.ErrUnroutable) {
		return nil
	}
	return err
}
