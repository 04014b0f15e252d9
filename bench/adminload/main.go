// Command adminload measures how many GET /v1/token requests per second
// the admin API (central.Admin on a real keeper) serves over real HTTP on
// this machine, next to a bare net/http handler answering a body of the
// same size, and prints the ratio:
//
//	go run ./bench/adminload [-c 16] [-d 3s]
//
// Both servers and the load run in this one process, on loopback, with
// keep-alive connections, so the figures compare the handlers rather than
// the network.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The made-up account the fake platform knows.
const (
	appID     = "wx00000000load0001"
	appSecret = "adminload-app-secret-not-a-real-one"
)

func main() {
	conc := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 3*time.Second, "how long each server is loaded")
	flag.Parse()

	fake := wechattest.NewServer(wechattest.WithApp(appID, appSecret))
	defer fake.Close()
	dir, err := os.MkdirTemp("", "adminload-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	keeper, err := wechat.New(ctx, wechat.Options{
		AppID: appID, AppSecret: appSecret, APIBase: fake.URL,
		Store: wechat.NewFileStore(filepath.Join(dir, "wechat.txt"), nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	const key = "load-test-admin-key-0123456789"
	admin := central.NewAdmin(keeper, central.AdminOptions{Key: key})

	// The bare handler answers what the admin API answers, precomputed.
	body, err := probe(admin, key)
	if err != nil {
		log.Fatal(err)
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})

	bareRPS := load(bare, "", *conc, *dur)
	adminRPS := load(admin, key, *conc, *dur)
	fmt.Printf("GET /v1/token, %d clients, %v each, GOMAXPROCS-bound on this machine:\n", *conc, *dur)
	fmt.Printf("  bare net/http handler  %9.0f req/s\n", bareRPS)
	fmt.Printf("  admin API              %9.0f req/s\n", adminRPS)
	fmt.Printf("  ratio admin/bare       %9.2f\n", adminRPS/bareRPS)
}

// probe returns the body of one GET /v1/token.
func probe(h http.Handler, key string) ([]byte, error) {
	srv, url := listen(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", url+"/v1/token", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("probe: HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

func listen(h http.Handler) (*http.Server, string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, "http://" + l.Addr().String()
}

// load serves h and sends it GET /v1/token from conc clients for d, and
// returns the successful requests per second.
func load(h http.Handler, key string, conc int, d time.Duration) float64 {
	srv, url := listen(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var n, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", url+"/v1/token", nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			for time.Now().Before(deadline) {
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if f := failed.Load(); f > 0 {
		log.Printf("%d requests failed", f)
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}
