package nettportal

import "time"

// Sample is one point of a session's traffic chart: the counters at an
// interim update, and the rate since the point before it.
type Sample struct {
	At           time.Time `json:"at"`
	InputOctets  int64     `json:"input_octets"`
	OutputOctets int64     `json:"output_octets"`
	InputBps     int64     `json:"input_bps"`
	OutputBps    int64     `json:"output_bps"`
}
