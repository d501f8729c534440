package routeros

import "time"

// SetBackoff shortens the reconnect backoff so tests do not wait seconds.
func SetBackoff(c *Client, lo, hi time.Duration) {
	c.sem <- struct{}{}
	c.minBackoff, c.maxBackoff = lo, hi
	<-c.sem
}
