package wechattest

import "time"

// A Fault is a failure Platform.Fail injects into the next calls of an
// endpoint. Delay is applied first; then the first of Drop, Status, Body
// and Errcode that is set decides the answer. A Fault with only Delay set
// answers normally after the delay.
type Fault struct {
	// Times is how many of the next calls the fault applies to (0 means 1).
	Times int

	// Errcode and Errmsg make an in-band error with HTTP 200. An empty
	// Errmsg is filled with the live platform's message for Errcode.
	Errcode int
	Errmsg  string

	// Status answers with this HTTP status instead (e.g. 502) and an HTML
	// body, as a gateway in front of WeChat would; Body replaces the HTML.
	Status int

	// Delay waits this long (real time, not the platform clock) before
	// answering. If the client gives up first, nothing is answered.
	Delay time.Duration

	// Body answers HTTP 200 with this malformed or unexpected body.
	Body string

	// Drop closes the connection without answering.
	Drop bool
}
