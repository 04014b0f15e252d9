package fifo

import (
	"strconv"
	"testing"
)

// contents returns the ring's slots oldest first, "-" for a hole, and
// checks that every key's index entry names its slot.
func contents(t *testing.T, r *Ring[int]) []string {
	t.Helper()
	var out []string
	keys := 0
	for k := range r.Used() {
		i := r.Nth(k)
		key := r.Key(i)
		if key == "" {
			out = append(out, "-")
			continue
		}
		keys++
		if j, ok := r.Lookup(key); !ok || j != i {
			t.Errorf("Lookup(%q) = %d, %v; want %d, true", key, j, ok, i)
		}
		if v := *r.At(i); strconv.Itoa(v) != key {
			t.Errorf("slot of %q holds %d", key, v)
		}
		out = append(out, key)
	}
	if keys != r.Len() {
		t.Errorf("Len = %d, want %d keys", r.Len(), keys)
	}
	return out
}

func push(r *Ring[int], v, max int) int { return r.Push(strconv.Itoa(v), v, max) }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func names(from, to int) []string {
	var out []string
	for v := from; v < to; v++ {
		out = append(out, strconv.Itoa(v))
	}
	return out
}

func TestRingOrder(t *testing.T) {
	var r Ring[int]
	if r.Len() != 0 || r.Used() != 0 {
		t.Fatalf("zero ring: Len %d, Used %d", r.Len(), r.Used())
	}
	if _, ok := r.Lookup("x"); ok {
		t.Fatal("zero ring holds x")
	}
	for v := range 10 {
		push(&r, v, 1000)
	}
	if got := contents(t, &r); !equal(got, names(0, 10)) {
		t.Fatalf("after 10 pushes: %v", got)
	}
	if i := r.Oldest(); r.Key(i) != "0" {
		t.Fatalf("Oldest holds %q, want 0", r.Key(i))
	}
	r.Pop()
	r.Pop()
	if got := contents(t, &r); !equal(got, names(2, 10)) {
		t.Fatalf("after 2 pops: %v", got)
	}
	if _, ok := r.Lookup("0"); ok {
		t.Error("popped key 0 still held")
	}
	if i, ok := r.LookupBytes([]byte("5")); !ok || *r.At(i) != 5 {
		t.Errorf("LookupBytes(5) = %d, %v", i, ok)
	}
}

// TestRingGrow pushes past the first ring, with the head moved on so
// that the ring wraps, and checks that order and index survive.
func TestRingGrow(t *testing.T) {
	var r Ring[int]
	for v := range 64 {
		push(&r, v, 1<<20)
	}
	if got := len(r.slots); got != 64 {
		t.Fatalf("first ring has %d slots, want 64", got)
	}
	for range 20 {
		r.Pop()
	}
	for v := 64; v < 84; v++ { // wraps around: fills slots 0..19 again
		push(&r, v, 1<<20)
	}
	if r.head != 20 || len(r.slots) != 64 {
		t.Fatalf("head %d, %d slots; want 20, 64", r.head, len(r.slots))
	}
	push(&r, 84, 1<<20) // full: doubles
	if len(r.slots) != 128 || r.head != 0 {
		t.Fatalf("after growth: %d slots, head %d; want 128, 0", len(r.slots), r.head)
	}
	if got := contents(t, &r); !equal(got, names(20, 85)) {
		t.Fatalf("after growth: %v", got)
	}
	for v := 20; v < 85; v++ {
		if i, ok := r.Lookup(strconv.Itoa(v)); !ok || i != v-20 {
			t.Errorf("Lookup(%d) = %d, %v; want %d (re-indexed)", v, i, ok, v-20)
		}
	}
}

// TestRingGrowMax checks that a first ring is no bigger than max entries
// need, and that a full ring still grows when pushed to.
func TestRingGrowMax(t *testing.T) {
	for _, tt := range []struct{ max, slots int }{{1, 1}, {3, 4}, {8, 8}, {9, 16}, {64, 64}, {100, 64}} {
		var r Ring[int]
		push(&r, 0, tt.max)
		if len(r.slots) != tt.slots {
			t.Errorf("max %d: first ring has %d slots, want %d", tt.max, len(r.slots), tt.slots)
		}
	}
	var r Ring[int]
	for v := range 5 {
		push(&r, v, 3)
	}
	if len(r.slots) != 8 {
		t.Errorf("5 pushes with max 3: %d slots, want 8", len(r.slots))
	}
	if got := contents(t, &r); !equal(got, names(0, 5)) {
		t.Errorf("5 pushes with max 3: %v", got)
	}
}

// TestRingHoles removes keys from the middle and the head: the slots stay,
// without keys, until they are popped, and survive a growth in place.
func TestRingHoles(t *testing.T) {
	var r Ring[int]
	for v := range 4 {
		push(&r, v, 4)
	}
	i, _ := r.Lookup("1")
	r.Remove(i)
	if *r.At(i) != 1 {
		t.Errorf("hole lost its value: %d", *r.At(i))
	}
	if got := contents(t, &r); !equal(got, []string{"0", "-", "2", "3"}) {
		t.Fatalf("after Remove(1): %v", got)
	}
	if r.Len() != 3 || r.Used() != 4 {
		t.Fatalf("Len %d, Used %d; want 3, 4", r.Len(), r.Used())
	}
	push(&r, 4, 4) // full: grows, the hole moving with the rest
	if got := contents(t, &r); !equal(got, []string{"0", "-", "2", "3", "4"}) {
		t.Fatalf("after growth: %v", got)
	}
	r.Pop()
	if r.Key(r.Oldest()) != "" {
		t.Fatalf("oldest is %q, want the hole", r.Key(r.Oldest()))
	}
	r.Pop() // the hole: no key to drop
	if got := contents(t, &r); !equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("after popping the hole: %v", got)
	}
	r.Remove(r.Oldest())
	r.Pop()
	if got := contents(t, &r); !equal(got, []string{"3", "4"}) {
		t.Fatalf("after removing and popping the head: %v", got)
	}
	// A removed key may be pushed again, as a new entry.
	push(&r, 3, 4)
	if _, ok := r.Lookup("3"); !ok {
		t.Fatal("3 not held after a push")
	}
}

// TestRingPopClears checks that a popped slot keeps nothing alive.
func TestRingPopClears(t *testing.T) {
	var r Ring[*int]
	v := new(int)
	r.Push("a", v, 8)
	i := r.Oldest()
	r.Pop()
	if r.slots[i].key != "" || r.slots[i].val != nil {
		t.Errorf("popped slot holds %q, %v", r.slots[i].key, r.slots[i].val)
	}
	if r.Len() != 0 || r.Used() != 0 {
		t.Errorf("Len %d, Used %d after the last pop", r.Len(), r.Used())
	}
}
