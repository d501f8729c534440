package nettportal

import "time"

// ThroughputPoint is one router's load in one time bucket: the sessions
// that reported in it and the sum of their average rates over it (bits/s).
type ThroughputPoint struct {
	At        time.Time `json:"at"`
	Router    string    `json:"router"`
	Sessions  int64     `json:"sessions"`
	InputBps  int64     `json:"input_bps"`
	OutputBps int64     `json:"output_bps"`
}
