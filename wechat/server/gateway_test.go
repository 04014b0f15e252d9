package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// TestServeGateway: the gateway answers WeChat's paths on the admin
// listener with WeChat's credentials, even when the admin API wants a
// key, and WECHAT_GATEWAY=off turns it off.
func TestServeGateway(t *testing.T) {
	fake := wechattest.NewServer(wechattest.WithApp(testAppID, testSecret))
	defer fake.Close()
	cfg := serveConfig(t, fake.URL)
	cfg.AdminKey = testKey
	st := startServe(t, cfg, Options{HTTPClient: fake.Client()})
	admin := "http://" + st.admin

	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		data, _ := io.ReadAll(resp.Body)
		json.Unmarshal(data, &m)
		return resp.StatusCode, m
	}
	status, m := get("/cgi-bin/token?grant_type=client_credential&appid=" + testAppID + "&secret=" + testSecret)
	tok, _ := m["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("/cgi-bin/token without the admin key: %d %v; want a token (the gateway takes WeChat's credentials)", status, m)
	}
	if status, m := get("/cgi-bin/getcallbackip?access_token=" + tok); status != http.StatusOK || m["ip_list"] == nil {
		t.Errorf("a proxied call: %d %v", status, m)
	}
	if status, _ := get("/v1/token"); status != http.StatusUnauthorized {
		t.Errorf("/v1/token without the key: %d; want 401 (the admin API keeps its key)", status)
	}
	if n := fake.Stats().Fetches[wechattest.PathToken]; n != 1 {
		t.Errorf("WeChat issued %d tokens; want 1", n)
	}
	// The status data counts the gateway's calls of the app.
	req, _ := http.NewRequest(http.MethodGet, admin+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sd struct {
		Gateway bool `json:"gateway"`
		Apps    []struct {
			Gateway map[string]int64 `json:"gateway"`
		} `json:"apps"`
	}
	json.NewDecoder(resp.Body).Decode(&sd)
	resp.Body.Close()
	if !sd.Gateway || len(sd.Apps) != 1 || sd.Apps[0].Gateway["ok"] != 2 {
		t.Errorf("/v1/status: gateway %v, apps %+v; want the app's 2 calls counted ok", sd.Gateway, sd.Apps)
	}

	off := serveConfig(t, fake.URL)
	off.GatewayOff = true
	st = startServe(t, off, Options{HTTPClient: fake.Client()})
	resp, err = http.Get("http://" + st.admin + "/cgi-bin/token?grant_type=client_credential&appid=" + testAppID + "&secret=" + testSecret)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "access_token") {
		t.Errorf("with WECHAT_GATEWAY=off, /cgi-bin/token answered %d %s; want the admin API's 404", resp.StatusCode, body)
	}
}
