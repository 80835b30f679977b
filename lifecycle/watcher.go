// Package lifecycle tells a process on EC2 that its instance is being
// retired. A Watcher polls the instance metadata service (IMDSv2 only) for
// a spot interruption notice and for the auto-scaling target lifecycle
// state turning Terminated, and reports the first as a Notice; a Hook then
// completes the auto-scaling lifecycle action once the caller has wound
// down. What a notice means (for renderfarm: a worker's warm shutdown) is
// the caller's business: nothing here knows about workers.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Metadata paths, under /latest/meta-data/.
const (
	spotPath  = "spot/instance-action"
	statePath = "autoscaling/target-lifecycle-state"
	groupPath = "tags/instance/aws:autoscaling:groupName"
)

// DefaultInterval is how often a Watcher asks: the metadata service is
// local and cheap, and a spot notice gives two minutes, so a few seconds
// lost to polling leave nearly all of them to the drain.
const DefaultInterval = 5 * time.Second

// Reason says why the instance is going.
type Reason string

const (
	SpotInterruption Reason = "spot interruption"
	ASGTermination   Reason = "auto-scaling termination"
)

// Notice is the first sign that the instance is going away.
type Notice struct {
	Reason Reason
	// Action is the spot notice's action (terminate, stop or hibernate);
	// empty for an auto-scaling termination.
	Action string
	// Time is when EC2 will act; zero when the notice gives no time (an
	// auto-scaling termination waits for its lifecycle hook instead).
	Time time.Time
}

// ErrNoMetadata is returned by Start when the metadata service cannot be
// reached or refuses IMDSv2: not on EC2, IMDS turned off, or a hop limit
// too low for a container.
var ErrNoMetadata = errors.New("the EC2 instance metadata service is not reachable")

// ErrNotFound is returned by Metadata for a path the service has no value
// for (404).
var ErrNotFound = errors.New("no such instance metadata")

// Config is what a Watcher needs.
type Config struct {
	// Endpoint is the metadata service's base URL; empty: the SDK's
	// default (AWS_EC2_METADATA_SERVICE_ENDPOINT, else 169.254.169.254).
	Endpoint string
	Interval time.Duration // between polls; DefaultInterval when zero
	Logger   *slog.Logger
}

// Watcher polls the instance metadata service until it sees the instance
// being retired, then delivers one Notice and stops polling. Start it,
// read Notices, Stop it.
type Watcher struct {
	cfg        Config
	client     *imds.Client
	log        *slog.Logger
	notices    chan Notice
	instanceID string

	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// New builds a Watcher; nothing is requested until Start.
func New(cfg Config) *Watcher {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client := imds.New(imds.Options{
		Endpoint: cfg.Endpoint,
		// IMDSv2 only: the v1 fallback would send GETs without a token,
		// which a hardened instance (HttpTokens=required) refuses anyway.
		EnableFallback: aws.FalseTernary,
		// The operator asked for the watcher, so AWS_EC2_METADATA_DISABLED
		// (meant for the SDK's credential and region look-ups) does not
		// silently turn it off.
		ClientEnableState: imds.ClientEnabled,
		// The next poll is the retry; the SDK's own (three attempts with
		// backoff) would only make one poll outlast the interval.
		Retryer: aws.NopRetryer{},
	})
	return &Watcher{cfg: cfg, client: client, log: cfg.Logger, notices: make(chan Notice, 1), done: make(chan struct{})}
}

// Client is the metadata client the Watcher uses, for the caller's other
// look-ups (the SDK's region, say) to go to the same service.
func (w *Watcher) Client() *imds.Client { return w.client }

// Start reads the instance id, which proves the service answers IMDSv2
// (ErrNoMetadata if not), and starts polling until Stop or ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	id, err := w.Metadata(ctx, "instance-id")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoMetadata, err)
	}
	w.instanceID = id
	ctx, w.stop = context.WithCancel(ctx)
	go w.poll(ctx)
	w.log.Info("watching EC2 instance metadata for a spot notice or an auto-scaling termination", "instance", id, "interval", w.cfg.Interval)
	return nil
}

// Stop ends the polling and waits for it. Safe to call more than once,
// and without Start.
func (w *Watcher) Stop() {
	w.once.Do(func() {
		if w.stop == nil {
			return
		}
		w.stop()
		<-w.done
	})
}

// Notices delivers the first sign of retirement, once.
func (w *Watcher) Notices() <-chan Notice { return w.notices }

// InstanceID is the instance's id, known after Start.
func (w *Watcher) InstanceID() string { return w.instanceID }

// GroupName reads the instance's auto-scaling group from its tags; it is
// there only when the launch template turns instance metadata tags on
// (ErrNotFound otherwise).
func (w *Watcher) GroupName(ctx context.Context) (string, error) {
	return w.Metadata(ctx, groupPath)
}

// Metadata reads one metadata path (under /latest/meta-data/).
func (w *Watcher) Metadata(ctx context.Context, path string) (string, error) {
	out, err := w.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
			return "", fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		return "", fmt.Errorf("reading instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("reading instance metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (w *Watcher) poll(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	// Each kind of failure is logged once, not every few seconds; a
	// recovery is logged and re-arms them.
	logged := map[string]bool{}
	for {
		n, err := w.check(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if class := errorClass(err); !logged[class] {
				logged[class] = true
				w.log.Warn("instance metadata not answering; still watching", "err", err)
			}
		case len(logged) > 0:
			clear(logged)
			w.log.Info("instance metadata answering again")
		}
		if n != nil {
			w.notices <- *n
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check asks both questions once; a notice from either wins over an error
// from the other.
func (w *Watcher) check(ctx context.Context) (*Notice, error) {
	spot, spotErr := w.Metadata(ctx, spotPath)
	if spotErr == nil {
		n := spotNotice(spot)
		if n.Time.IsZero() {
			w.log.Warn("spot notice without a readable time; draining anyway", "notice", spot)
		}
		return &n, nil
	}
	state, stateErr := w.Metadata(ctx, statePath)
	if stateErr == nil && state == "Terminated" {
		return &Notice{Reason: ASGTermination}, nil
	}
	// 404 is the normal answer: no notice, or not in an auto-scaling group.
	// Both paths usually fail alike; the first failure stands for both.
	if err := notFoundIsNil(spotErr); err != nil {
		return nil, err
	}
	return nil, notFoundIsNil(stateErr)
}

// spotNotice reads spot/instance-action's JSON. An unreadable notice
// still is one: the instance goes either way.
func spotNotice(body string) Notice {
	var v struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	n := Notice{Reason: SpotInterruption}
	if json.Unmarshal([]byte(body), &v) == nil {
		n.Action = v.Action
		n.Time, _ = time.Parse(time.RFC3339, v.Time)
	}
	return n
}

func notFoundIsNil(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// errorClass groups failures worth one log line each: an HTTP status, a
// timeout, a refused or reset connection.
func errorClass(err error) string {
	var re *smithyhttp.ResponseError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("status %d", re.HTTPStatusCode())
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne):
		return "network"
	}
	return "other"
}
