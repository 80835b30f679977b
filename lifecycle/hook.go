package lifecycle

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// Hook is an auto-scaling termination lifecycle hook that holds the
// instance (up to the hook's heartbeat timeout, an hour by default) until
// Complete says the instance has wound down and may go.
type Hook struct {
	Name   string // the lifecycle hook's name
	Group  string // the auto-scaling group's name
	Client *autoscaling.Client
}

// Complete completes the lifecycle action for instanceID with CONTINUE:
// the group goes on terminating it.
func (h Hook) Complete(ctx context.Context, instanceID string) error {
	_, err := h.Client.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String(h.Group),
		LifecycleHookName:     aws.String(h.Name),
		InstanceId:            aws.String(instanceID),
		LifecycleActionResult: aws.String("CONTINUE"),
	})
	if err != nil {
		return fmt.Errorf("completing lifecycle hook %s of group %s for %s: %w", h.Name, h.Group, instanceID, err)
	}
	return nil
}
