package wechat

import (
	"errors"
	"sync"
	"time"
)

// HistorySlot is the width of one slot of a keeper's refresh history
// (see RefreshHistory).
const HistorySlot = 10 * time.Minute

// historySlots is how many slots the history keeps: 24 hours.
const historySlots = int(24 * time.Hour / HistorySlot)

// history counts the access token's refreshes by outcome in a fixed ring
// of 10-minute slots covering the last 24 hours, for a status page's
// timeline. Noting a refresh takes a mutex held for a few instructions and
// allocates nothing; refreshes are rare (a few an hour), so it never
// contends.
type history struct {
	mu    sync.Mutex
	slots [historySlots]historyCount
}

// historyCount is one slot of history.
type historyCount struct {
	n       int64 // the slot's number since the epoch (Unix seconds / HistorySlot); 0: unused
	counts  [numOutcomes]int32
	errcode int32 // WeChat's errcode of the slot's last failed refresh that had one
}

// slotOf returns the ring index and the number of the slot of t.
func slotOf(t time.Time) (int, int64) {
	n := t.Unix() / int64(HistorySlot/time.Second)
	return int(n % int64(historySlots)), n
}

// at returns the slot of t, emptied first if it held an older slot.
// h.mu must be held.
func (h *history) at(t time.Time) *historyCount {
	i, n := slotOf(t)
	s := &h.slots[i]
	if s.n != n {
		*s = historyCount{n: n}
	}
	return s
}

// add notes a refresh that ended with o at t.
func (h *history) add(t time.Time, o outcome) {
	h.mu.Lock()
	h.at(t).counts[o]++
	h.mu.Unlock()
}

// failed notes WeChat's errcode of a refresh that failed with err at t,
// if err carries one.
func (h *history) failed(t time.Time, err error) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code == 0 {
		return
	}
	h.mu.Lock()
	h.at(t).errcode = int32(apiErr.Code)
	h.mu.Unlock()
}

// RefreshSlot is what happened to the access token's refreshes during one
// HistorySlot.
type RefreshSlot struct {
	Start   time.Time // the slot's start, a multiple of HistorySlot since the epoch
	Fetched int       // refreshes that fetched a new token from WeChat
	Adopted int       // refreshes that adopted a token another process stored
	Failed  int       // refreshes that failed
	// Errcode is WeChat's errcode of the slot's last failed refresh that
	// had one; 0 if none had.
	Errcode int
}

// RefreshHistory is a keeper's recent refreshes of the access token, for
// a status page: the limits they count against and what the last 24 hours
// held, by HistorySlot.
type RefreshHistory struct {
	// API is the token endpoint whose fetches are counted ("token" or
	// "stable_token"): the API of the quota's Counters (see HourCounter).
	API string
	// HourlyCap is Options.MaxFetchesPerHour.
	HourlyCap int
	// Slots are the slots of the 24 hours up to now that saw a refresh,
	// oldest first.
	Slots []RefreshSlot
}

// RefreshHistory returns the keeper's refreshes of the access token over
// the last 24 hours, as seen by this process. It does no I/O.
func (w *Wechat) RefreshHistory() RefreshHistory {
	out := RefreshHistory{API: w.tokenAPIName(), HourlyCap: w.opts.MaxFetchesPerHour}
	_, now := slotOf(w.clock.Now())
	h := &w.stats.history
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := now - int64(historySlots) + 1; n <= now; n++ {
		s := &h.slots[int(n%int64(historySlots))]
		if s.n != n || s.counts == [numOutcomes]int32{} {
			continue
		}
		out.Slots = append(out.Slots, RefreshSlot{
			Start:   time.Unix(n*int64(HistorySlot/time.Second), 0).UTC(),
			Fetched: int(s.counts[outcomeFetched]),
			Adopted: int(s.counts[outcomeAdopted]),
			Failed:  int(s.counts[outcomeFailed]),
			Errcode: int(s.errcode),
		})
	}
	return out
}
