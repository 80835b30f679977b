package job

// FieldError ties a storage refusal to the request field it came from,
// such as "outputs[2].key" or "source".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }
