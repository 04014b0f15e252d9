// Package fifo is the keyed FIFO ring that the middleware's in-process
// memories (dedupe.Memory, and the replay check's) keep their entries in.
//
// A Ring holds values in the order they were pushed, each under a string
// key, in a slice whose length is a power of two, with a map from key to
// position. Entries that expire in about the order they were made are
// dropped from the head at the cost of a map delete, and a full ring takes
// a new entry in the oldest one's slot without allocating.
//
// A Ring is not safe for concurrent use: its owner locks. It has no notion
// of expiry, limits or waking; its owner keeps those in the values and
// decides when to Pop and Remove.
package fifo

// A Ring is a FIFO of values of type T under string keys. Its zero value
// is an empty ring. Slots are named by their position, an int that stays
// valid until the next Push or Pop.
//
// An entry removed with Remove stays in the ring as a hole, with no key,
// until it reaches the head and is popped: positions do not move, and the
// owner's FIFO order is kept.
type Ring[T any] struct {
	index   map[string]int // key → position in slots
	slots   []slot[T]      // len is a power of two, or 0
	head, n int            // the oldest slot, and how many are in use
}

type slot[T any] struct {
	key string // "" for a hole
	val T
}

// Len returns the number of keys held: the slots in use less the holes.
func (r *Ring[T]) Len() int { return len(r.index) }

// Used returns the number of slots in use, holes included.
func (r *Ring[T]) Used() int { return r.n }

// Lookup returns the position of key.
func (r *Ring[T]) Lookup(key string) (int, bool) {
	i, ok := r.index[key]
	return i, ok
}

// LookupBytes is Lookup of string(key), without copying key.
func (r *Ring[T]) LookupBytes(key []byte) (int, bool) {
	i, ok := r.index[string(key)]
	return i, ok
}

// At returns the value in slot i, which the caller may change in place.
// The pointer is valid until the next Push or Pop.
func (r *Ring[T]) At(i int) *T { return &r.slots[i].val }

// Key returns the key of slot i, or "" if it is a hole.
func (r *Ring[T]) Key(i int) string { return r.slots[i].key }

// Oldest returns the position of the oldest slot in use, which may be a
// hole. The ring must not be empty (Used > 0).
func (r *Ring[T]) Oldest() int { return r.head }

// Nth returns the position of the k-th oldest slot in use (0 for the
// oldest), for 0 <= k < Used.
func (r *Ring[T]) Nth(k int) int { return (r.head + k) & (len(r.slots) - 1) }

// Push adds v under key as the newest entry and returns its position. key
// must not be "" nor held already. If every slot is in use, Push grows the
// ring first (see grow); to keep it within max entries, the caller pops
// before pushing.
func (r *Ring[T]) Push(key string, v T, max int) int {
	if r.n == len(r.slots) {
		r.grow(max)
	}
	if r.index == nil {
		r.index = make(map[string]int)
	}
	i := (r.head + r.n) & (len(r.slots) - 1)
	r.n++
	r.slots[i] = slot[T]{key: key, val: v}
	r.index[key] = i
	return i
}

// grow doubles the ring, keeping the order of its slots and moving the
// oldest to position 0. A first ring has 64 slots, or fewer: the smallest
// power of two that holds max entries.
func (r *Ring[T]) grow(max int) {
	size := 2 * len(r.slots)
	if size == 0 {
		size = 64
	}
	for size/2 >= max && size > 1 && size/2 >= r.n+1 {
		size /= 2 // no more room than max entries need
	}
	slots := make([]slot[T], size)
	for k := range r.n {
		s := r.slots[(r.head+k)&(len(r.slots)-1)]
		slots[k] = s
		if s.key != "" {
			r.index[s.key] = k
		}
	}
	r.slots, r.head = slots, 0
}

// Pop drops the oldest slot, hole or not, removing its key. The ring must
// not be empty (Used > 0). An owner that keeps state per key (waiters,
// byte counts) looks at Oldest and settles it before it pops.
func (r *Ring[T]) Pop() {
	s := &r.slots[r.head]
	if s.key != "" {
		delete(r.index, s.key)
	}
	*s = slot[T]{}
	r.head = (r.head + 1) & (len(r.slots) - 1)
	r.n--
}

// Remove drops the key of slot i, leaving a hole that keeps its value
// until it reaches the head and is popped. The caller clears what of the
// value it needs cleared.
func (r *Ring[T]) Remove(i int) {
	s := &r.slots[i]
	delete(r.index, s.key)
	s.key = ""
}
