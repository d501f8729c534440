package main

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"time"
)

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "<NULL>"
	}
	return t.UTC().String()
}
