package fleet

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// CloudWatch metric names scale puts. A target-tracking policy tracks
// MetricBacklogPerInstance with the target value the operator works out
// (throughput per instance × acceptable wait), or, with metric math,
// MetricBacklogPerInstance / MetricAcceptableBacklogPerInstance at 1.
const (
	MetricBacklogPerInstance           = "BacklogPerInstance"
	MetricAcceptableBacklogPerInstance = "AcceptableBacklogPerInstance"
	MetricDesiredInstances             = "DesiredInstances"
	MetricBacklog                      = "Backlog"
	MetricInstances                    = "Instances"
	MetricThroughputPerInstance        = "ThroughputPerInstance"
	MetricReadyMessages                = "ReadyMessages" // per queue, with a Queue dimension added
)

// CloudWatch puts measurements as custom metrics in one namespace, with
// the same dimensions on every fleet-wide metric (a policy's metric
// specification must name them exactly).
type CloudWatch struct {
	client     *cloudwatch.Client
	namespace  string
	dimensions []types.Dimension
}

// NewCloudWatch reads the standard AWS configuration (environment, shared
// files, instance role; AWS_ENDPOINT_URL_CLOUDWATCH overrides the
// endpoint). dimensions are name/value pairs.
func NewCloudWatch(ctx context.Context, namespace string, dimensions [][2]string) (*CloudWatch, error) {
	if namespace == "" {
		return nil, fmt.Errorf("fleet: cloudwatch: no namespace")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet: cloudwatch: AWS configuration: %w", err)
	}
	cw := &CloudWatch{client: cloudwatch.NewFromConfig(cfg), namespace: namespace}
	for _, d := range dimensions {
		cw.dimensions = append(cw.dimensions, types.Dimension{Name: aws.String(d[0]), Value: aws.String(d[1])})
	}
	return cw, nil
}

// Put sends m's figures in one PutMetricData. With no throughput measured
// the throughput and acceptable backlog are left out rather than put as
// 0, which a policy would read as "infinitely behind".
func (cw *CloudWatch) Put(ctx context.Context, m *Measurement) error {
	at := aws.Time(m.Time)
	datum := func(name string, v float64, unit types.StandardUnit, dims []types.Dimension) types.MetricDatum {
		return types.MetricDatum{MetricName: aws.String(name), Value: aws.Float64(v), Unit: unit, Timestamp: at, Dimensions: dims}
	}
	data := []types.MetricDatum{
		datum(MetricBacklogPerInstance, m.BacklogPerInstance, types.StandardUnitCount, cw.dimensions),
		datum(MetricDesiredInstances, float64(m.Desired), types.StandardUnitCount, cw.dimensions),
		datum(MetricBacklog, float64(m.Backlog), types.StandardUnitCount, cw.dimensions),
		datum(MetricInstances, float64(m.Instances), types.StandardUnitCount, cw.dimensions),
	}
	if m.AcceptableBacklogPerInstance > 0 {
		data = append(data,
			datum(MetricAcceptableBacklogPerInstance, m.AcceptableBacklogPerInstance, types.StandardUnitCount, cw.dimensions),
			datum(MetricThroughputPerInstance, m.ThroughputPerInstance, types.StandardUnitCountSecond, cw.dimensions))
	}
	for _, q := range m.Queues {
		dims := append(append([]types.Dimension{}, cw.dimensions...), types.Dimension{Name: aws.String("Queue"), Value: aws.String(q.Name)})
		data = append(data, datum(MetricReadyMessages, float64(q.Ready), types.StandardUnitCount, dims))
	}
	if _, err := cw.client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(cw.namespace), MetricData: data}); err != nil {
		return fmt.Errorf("fleet: cloudwatch PutMetricData: %w", err)
	}
	return nil
}
