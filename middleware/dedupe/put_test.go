package dedupe

import (
	"context"
	"testing"
	"time"
)

// hidden is a Memory seen only as a Store, so that Put takes Do's way.
type hidden struct{ Store }

// TestPut: the first Put stores its reply, a later one gets it back as
// shared whatever its own; a Put on a key claimed with Begin waits for its
// reply. The same on a Memory (one step) and on any other Store (Do).
func TestPut(t *testing.T) {
	for name, newStore := range map[string]func() Store{
		"Memory": func() Store { return &Memory{} },
		"Store":  func() Store { return hidden{&Memory{}} },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore()
			r, shared, err := Put(ctx, s, "k", time.Minute, Reply{Body: []byte("first")})
			if err != nil || shared || string(r.Body) != "first" {
				t.Fatalf("first Put = %q, %v, %v; want its own reply, not shared", r.Body, shared, err)
			}
			r, shared, err = Put(ctx, s, "k", time.Minute, Reply{Body: []byte("second")})
			if err != nil || !shared || string(r.Body) != "first" {
				t.Fatalf("second Put = %q, %v, %v; want the first reply, shared", r.Body, shared, err)
			}

			if first, err := s.Begin(ctx, "claimed", time.Minute); err != nil || !first {
				t.Fatalf("Begin = %v, %v", first, err)
			}
			got := make(chan Reply, 1)
			go func() {
				r, shared, err := Put(ctx, s, "claimed", time.Minute, Reply{Body: []byte("put")})
				if err != nil || !shared {
					t.Errorf("Put on a claimed key: shared %v, %v", shared, err)
				}
				got <- r
			}()
			waitForWaiter(t, s)
			if err := s.Finish(ctx, "claimed", Reply{Body: []byte("finished")}); err != nil {
				t.Fatal(err)
			}
			if r := <-got; string(r.Body) != "finished" {
				t.Errorf("Put on a claimed key got %q, want the claim's reply", r.Body)
			}

			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := Put(cancelled, s, "late", time.Minute, Reply{}); err == nil {
				t.Error("Put with a done context succeeded")
			}
		})
	}
}

// waitForWaiter waits until a goroutine waits on the Memory under s.
func waitForWaiter(t *testing.T, s Store) {
	t.Helper()
	m, ok := s.(*Memory)
	if h, isHidden := s.(hidden); isHidden {
		m, ok = h.Store.(*Memory)
	}
	if !ok {
		t.Fatal("not a Memory")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		m.mu.Lock()
		n := m.waiters
		m.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Put did not wait for the claim")
		}
		time.Sleep(time.Millisecond)
	}
}
