package job

// Result is what the task returns to the client.
type Result struct {
	Source   SourceInfo   `json:"source"`
	Outputs  []OutputInfo `json:"outputs"`
	Timings  Timings      `json:"timings_ms"`
	Attempts int          `json:"attempts"`
}

type SourceInfo struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int    `json:"bytes"`
}

type OutputInfo struct {
	Key    string `json:"key"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	ETag   string `json:"etag"`
}

type Timings struct {
	Fetch  float64 `json:"fetch"`
	Render float64 `json:"render"`
	Upload float64 `json:"upload"`
	Total  float64 `json:"total"`
}
