package sinks

import (
	"errors"
	"fmt"
)

// ErrHalted matches every *HaltedError: the destination cannot take any
// event until someone fixes its configuration or its account (a revoked
// key, a missing topic, an unknown region).
var ErrHalted = errors.New("sinks: destination halted")

// HaltedError is a failure that no event of the batch is to blame for and
// no retry within a delivery pass can fix: the vendor refused the
// credential (HTTP 401/403, Braze's and Iterable's key errors), does not
// know the account or region (404 on the API root), or the Kafka topic does
// not exist. Deliver dead-letters nothing on it: it stops at once, leaves
// every message in the outbox and returns the error (which matches
// ErrHalted), so the destination is reported unhealthy until a later pass
// — the worker tries again every deliver interval — goes through.
type HaltedError struct {
	// Reason says what the destination answered, without secrets.
	Reason string
	// Fix says what the user should do ("check api_key").
	Fix string
	Err error
}

func (e *HaltedError) Error() string {
	msg := "halted: " + e.Reason
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

func (e *HaltedError) Unwrap() error { return e.Err }

// Is makes every HaltedError match ErrHalted.
func (e *HaltedError) Is(target error) bool { return target == ErrHalted }

// Halted returns a *HaltedError.
func Halted(reason, fix string, err error) error {
	return &HaltedError{Reason: reason, Fix: fix, Err: err}
}

// haltedIn returns the first *HaltedError among errs, if any.
func haltedIn(errs []error) *HaltedError {
	for _, err := range errs {
		var h *HaltedError
		if errors.As(err, &h) {
			return h
		}
	}
	return nil
}

// DestinationHaltedError is what Deliver returns when a destination
// halted: it names the destination and how many messages wait.
type DestinationHaltedError struct {
	Dest    string
	Waiting int
	Halt    *HaltedError
}

func (e *DestinationHaltedError) Error() string {
	msg := fmt.Sprintf("destination %s halted: %s", e.Dest, e.Halt.Reason)
	if e.Halt.Fix != "" {
		msg += "; " + e.Halt.Fix
	}
	return msg + "; nothing was dead-lettered, its events wait in the outbox and delivery resumes once it accepts them"
}

func (e *DestinationHaltedError) Unwrap() error { return e.Halt }
