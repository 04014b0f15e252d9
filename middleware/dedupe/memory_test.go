package dedupe

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// atCapacity returns a full Memory of max entries and the keys of the
// claims the caller makes next.
func atCapacity(max, next int) (*Memory, []string) {
	clk := &fakeClock{now: time.Unix(1714112445, 0)}
	m := &Memory{MaxEntries: max, Clock: clk}
	for i := range max {
		m.Begin(context.Background(), "old"+strconv.Itoa(i), time.Minute)
	}
	keys := make([]string, next)
	for i := range keys {
		keys[i] = "gh_1|msg|" + strconv.Itoa(1e9+i)
	}
	return m, keys
}

// TestMemoryAtCapacityIsCheap checks that a full store takes a new claim by
// dropping the oldest one, in FIFO order, without allocating an entry.
func TestMemoryAtCapacityIsCheap(t *testing.T) {
	const max = 1000
	m, keys := atCapacity(max, 4*max)
	ctx := context.Background()
	i := 0
	allocs := testing.AllocsPerRun(len(keys)-1, func() {
		if first, _ := m.Begin(ctx, keys[i], time.Minute); !first {
			t.Fatalf("Begin(%s) not first", keys[i])
		}
		i++
	})
	if allocs > 0.1 {
		t.Errorf("Begin on a full store: %v allocations per claim, want none", allocs)
	}
	if n := m.Len(); n != max {
		t.Errorf("Len = %d, want %d", n, max)
	}
	// The last max claims are held; the one before them was dropped.
	if first, _ := m.Begin(ctx, keys[i-1], time.Minute); first {
		t.Error("the newest claim was dropped")
	}
	if first, _ := m.Begin(ctx, keys[i-max-1], time.Minute); !first {
		t.Error("a claim older than the newest MaxEntries was kept")
	}
}

// TestMemoryAbandonInTheMiddle removes a claim that is not the oldest; its
// slot is reused only once it reaches the head, and the others keep their
// replies.
func TestMemoryAbandonInTheMiddle(t *testing.T) {
	ctx := context.Background()
	m := &Memory{MaxEntries: 3, Clock: &fakeClock{now: time.Unix(0, 0)}}
	for _, k := range []string{"a", "b", "c"} {
		m.Begin(ctx, k, time.Minute)
	}
	m.Abandon(ctx, "b")
	m.Finish(ctx, "c", Reply{Body: []byte("c")})
	if first, _ := m.Begin(ctx, "b", time.Minute); !first {
		t.Fatal("an abandoned claim could not be made again")
	}
	if r, err := m.Wait(ctx, "c"); err != nil || string(r.Body) != "c" {
		t.Fatalf("Wait(c) = %q, %v", r.Body, err)
	}
	if n := m.Len(); n > 3 {
		t.Fatalf("Len = %d, max 3", n)
	}
	if first, _ := m.Begin(ctx, "c", time.Minute); first {
		t.Error("c was dropped, though a was older")
	}
}

func BenchmarkMemoryAtCapacity(b *testing.B) {
	m, keys := atCapacity(DefaultMaxEntries, 1<<16)
	ctx := context.Background()
	r := Reply{ContentType: "text/xml", Body: []byte("<xml>reply</xml>")}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		k := keys[i&(len(keys)-1)]
		i++
		if first, _ := m.Begin(ctx, k, time.Minute); first {
			m.Finish(ctx, k, r)
		}
	}
}
