package wechattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// obj is a decoded JSON answer.
type obj = map[string]any

// api makes one request to srv and decodes the JSON answer, failing the
// test on a transport error, a status other than 200, a content type other
// than WeChat's, or a body that is not a JSON object.
func api(t *testing.T, srv *Server, method, path string, q url.Values, body string) obj {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return apiReq(t, srv, method, path, q, rd, "")
}

func apiReq(t *testing.T, srv *Server, method, path string, q url.Values, body io.Reader, ct string) obj {
	t.Helper()
	u := srv.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, b)
	}
	if got := resp.Header.Get("Content-Type"); got != contentType {
		t.Fatalf("%s %s: Content-Type %q, want %q (body %.100s)", method, path, got, contentType, b)
	}
	var m obj
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not a JSON object: %v in %s", method, path, err, b)
	}
	return m
}

// errcode returns m's errcode, 0 if it has none.
func errcode(m obj) int {
	n, _ := m["errcode"].(float64)
	return int(n)
}

// tokenQ returns the query of a business call with a fresh token of srv's
// test app.
func tokenQ(t *testing.T, srv *Server) url.Values {
	t.Helper()
	return url.Values{"access_token": {getToken(t, srv).AccessToken}}
}

func with(q url.Values, kv ...string) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set(kv[i], kv[i+1])
	}
	return c
}

// wantCode fails the test unless m carries errcode want.
func wantCode(t *testing.T, what string, m obj, want int) {
	t.Helper()
	if got := errcode(m); got != want {
		t.Errorf("%s: errcode %d, want %d (%v)", what, got, want, m)
	}
}

// TestBusinessTokenCheck: every modelled business API checks the token
// before anything else, as the token endpoints' callers expect.
func TestBusinessTokenCheck(t *testing.T) {
	srv := newTestServer(t, WithGrace(0))
	old := getToken(t, srv).AccessToken
	getToken(t, srv)
	for path, rt := range businessRoutes {
		for _, tt := range []struct {
			tok  string
			want int
		}{{"", 41001}, {"bogus", 40014}, {old, 40001}} {
			q := url.Values{}
			if tt.tok != "" {
				q.Set("access_token", tt.tok)
			}
			wantCode(t, rt.method+" "+path, api(t, srv, rt.method, path, q, "{}"), tt.want)
		}
	}
}

func TestMenu(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	wantCode(t, "get before create", api(t, srv, "GET", PathMenuGet, q, ""), 46003)
	if m := api(t, srv, "GET", PathSelfMenuInfo, q, ""); m["is_menu_open"] != 0.0 {
		t.Errorf("selfmenu before create: %v", m)
	}
	const menu = `{"button":[{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"},` +
		`{"name":"菜单","sub_button":[{"type":"view","name":"搜索","url":"http://www.soso.com/"}]}]}`
	wantCode(t, "create", api(t, srv, "POST", PathMenuCreate, q, menu), 0)
	got := api(t, srv, "GET", PathMenuGet, q, "")
	b, _ := json.Marshal(got["menu"])
	var want obj
	json.Unmarshal([]byte(menu), &want)
	wb, _ := json.Marshal(want)
	if string(b) != string(wb) {
		t.Errorf("menu/get = %s, want %s", b, wb)
	}
	self := api(t, srv, "GET", PathSelfMenuInfo, q, "")
	buttons := self["selfmenu_info"].(obj)["button"].([]any)
	if self["is_menu_open"] != 1.0 || len(buttons) != 2 {
		t.Fatalf("selfmenu: %v", self)
	}
	if list := buttons[1].(obj)["sub_button"].(obj)["list"].([]any); len(list) != 1 {
		t.Errorf("selfmenu sub_button: %v", buttons[1])
	}
	wantCode(t, "four buttons", api(t, srv, "POST", PathMenuCreate, q, `{"button":[{},{},{},{}]}`), 40016)
	wantCode(t, "six sub-buttons", api(t, srv, "POST", PathMenuCreate, q, `{"button":[{"sub_button":[{},{},{},{},{},{}]}]}`), 40023)
	wantCode(t, "no body", api(t, srv, "POST", PathMenuCreate, q, ""), 44002)
	wantCode(t, "bad JSON", api(t, srv, "POST", PathMenuCreate, q, "{"), 47001)
	wantCode(t, "delete", api(t, srv, "GET", PathMenuDelete, q, ""), 0)
	wantCode(t, "get after delete", api(t, srv, "GET", PathMenuGet, q, ""), 46003)
	if used := srv.Used(testApp, PathMenuCreate); used != 5 {
		t.Errorf("Used(menu/create) = %d, want 5 (calls past the token check count)", used)
	}
}

func TestUsersAndTags(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	list := api(t, srv, "GET", PathUserList, q, "")
	if list["total"] != float64(len(TestOpenIDs)) || list["next_openid"] != TestOpenIDs[len(TestOpenIDs)-1] {
		t.Errorf("user/get: %v", list)
	}
	if ids := list["data"].(obj)["openid"].([]any); len(ids) != len(TestOpenIDs) || ids[0] != DefaultOpenID {
		t.Errorf("user/get openids: %v", ids)
	}
	if end := api(t, srv, "GET", PathUserList, with(q, "next_openid", TestOpenIDs[len(TestOpenIDs)-1]), ""); end["count"] != 0.0 {
		t.Errorf("user/get past the end: %v", end)
	}
	u := api(t, srv, "GET", PathUserInfo, with(q, "openid", DefaultOpenID, "lang", "en"), "")
	if u["subscribe"] != 1.0 || u["openid"] != DefaultOpenID || u["language"] != "en" || u["subscribe_time"] == 0.0 {
		t.Errorf("user/info: %v", u)
	}
	wantCode(t, "user/info bad openid", api(t, srv, "GET", PathUserInfo, with(q, "openid", "nope"), ""), 40003)
	batch := api(t, srv, "POST", PathUserInfoBatch, q, `{"user_list":[{"openid":"`+TestOpenIDs[1]+`"},{"openid":"`+TestOpenIDs[2]+`"}]}`)
	if l := batch["user_info_list"].([]any); len(l) != 2 || l[1].(obj)["openid"] != TestOpenIDs[2] {
		t.Errorf("batchget: %v", batch)
	}

	tag := api(t, srv, "POST", PathTagsCreate, q, `{"tag":{"name":"广东"}}`)["tag"].(obj)
	id := int(tag["id"].(float64))
	if tag["name"] != "广东" || id < 100 {
		t.Fatalf("tags/create: %v", tag)
	}
	sid := func(n int) string { b, _ := json.Marshal(n); return string(b) }
	wantCode(t, "duplicate name", api(t, srv, "POST", PathTagsCreate, q, `{"tag":{"name":"广东"}}`), 45157)
	wantCode(t, "long name", api(t, srv, "POST", PathTagsCreate, q, `{"tag":{"name":"`+strings.Repeat("x", 31)+`"}}`), 45158)
	wantCode(t, "tagging", api(t, srv, "POST", PathTagsTagging, q, `{"openid_list":["`+DefaultOpenID+`","`+TestOpenIDs[1]+`"],"tagid":`+sid(id)+`}`), 0)
	wantCode(t, "tagging unknown tag", api(t, srv, "POST", PathTagsTagging, q, `{"openid_list":["`+DefaultOpenID+`"],"tagid":999}`), 45159)
	wantCode(t, "tagging bad openid", api(t, srv, "POST", PathTagsTagging, q, `{"openid_list":["x"],"tagid":`+sid(id)+`}`), 40003)
	wantCode(t, "tagging nobody", api(t, srv, "POST", PathTagsTagging, q, `{"openid_list":[],"tagid":`+sid(id)+`}`), 40032)
	members := api(t, srv, "POST", PathTagUsers, q, `{"tagid":`+sid(id)+`}`)
	if members["count"] != 2.0 {
		t.Errorf("user/tag/get: %v", members)
	}
	if l := api(t, srv, "POST", PathTagsOfUser, q, `{"openid":"`+DefaultOpenID+`"}`)["tagid_list"].([]any); len(l) != 1 || l[0] != float64(id) {
		t.Errorf("getidlist: %v", l)
	}
	if l := api(t, srv, "GET", PathUserInfo, with(q, "openid", DefaultOpenID), "")["tagid_list"].([]any); len(l) != 1 {
		t.Errorf("user/info tagid_list: %v", l)
	}
	tags := api(t, srv, "GET", PathTagsGet, q, "")["tags"].([]any)
	if len(tags) != 2 || tags[1].(obj)["count"] != 2.0 || tags[0].(obj)["id"] != 2.0 {
		t.Errorf("tags/get: %v", tags)
	}
	wantCode(t, "untagging", api(t, srv, "POST", PathTagsUntagging, q, `{"openid_list":["`+TestOpenIDs[1]+`"],"tagid":`+sid(id)+`}`), 0)
	if m := api(t, srv, "POST", PathTagUsers, q, `{"tagid":`+sid(id)+`}`); m["count"] != 1.0 {
		t.Errorf("after untagging: %v", m)
	}
	wantCode(t, "update", api(t, srv, "POST", PathTagsUpdate, q, `{"tag":{"id":`+sid(id)+`,"name":"广东人"}}`), 0)
	wantCode(t, "update system tag", api(t, srv, "POST", PathTagsUpdate, q, `{"tag":{"id":2,"name":"x"}}`), 45058)
	wantCode(t, "delete system tag", api(t, srv, "POST", PathTagsDelete, q, `{"tag":{"id":1}}`), 45058)
	wantCode(t, "delete", api(t, srv, "POST", PathTagsDelete, q, `{"tag":{"id":`+sid(id)+`}}`), 0)
	wantCode(t, "delete again", api(t, srv, "POST", PathTagsDelete, q, `{"tag":{"id":`+sid(id)+`}}`), 45159)
	if l := api(t, srv, "POST", PathTagsOfUser, q, `{"openid":"`+DefaultOpenID+`"}`)["tagid_list"].([]any); len(l) != 0 {
		t.Errorf("a deleted tag stays on the user: %v", l)
	}
}

func TestMessagesSent(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	const text = `{"touser":"` + DefaultOpenID + `","msgtype":"text","text":{"content":"Hello"}}`
	wantCode(t, "custom send", api(t, srv, "POST", PathCustomSend, q, text), 0)
	wantCode(t, "custom bad touser", api(t, srv, "POST", PathCustomSend, q, `{"touser":"x","msgtype":"text","text":{"content":"a"}}`), 40003)
	wantCode(t, "custom bad msgtype", api(t, srv, "POST", PathCustomSend, q, `{"touser":"`+DefaultOpenID+`","msgtype":"fax"}`), 40008)
	wantCode(t, "custom without its object", api(t, srv, "POST", PathCustomSend, q, `{"touser":"`+DefaultOpenID+`","msgtype":"image"}`), 47001)
	tpl := api(t, srv, "POST", PathTemplateSend, q, `{"touser":"`+DefaultOpenID+`","template_id":"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY","data":{"first":{"value":"hi"}}}`)
	if errcode(tpl) != 0 || tpl["msgid"] == nil {
		t.Errorf("template send: %v", tpl)
	}
	wantCode(t, "template without id", api(t, srv, "POST", PathTemplateSend, q, `{"touser":"`+DefaultOpenID+`"}`), 40037)
	sent := srv.Messages(testApp)
	if len(sent) != 2 || sent[0].Type != "text" || sent[0].ToUser != DefaultOpenID || string(sent[0].Body) != text ||
		sent[1].Path != PathTemplateSend || !sent[0].Time.Equal(t0) {
		t.Errorf("Messages = %+v", sent)
	}
}

func TestQRCodeAndShortLinks(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	tmp := api(t, srv, "POST", PathQRCodeCreate, q, `{"expire_seconds":120,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":123}}}`)
	perm := api(t, srv, "POST", PathQRCodeCreate, q, `{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"x"}}}`)
	if tmp["expire_seconds"] != 120.0 || !strings.HasPrefix(tmp["url"].(string), "http://weixin.qq.com/q/") {
		t.Errorf("temporary QR code: %v", tmp)
	}
	if _, ok := perm["expire_seconds"]; ok || perm["ticket"] == "" {
		t.Errorf("permanent QR code: %v", perm)
	}
	wantCode(t, "bad action", api(t, srv, "POST", PathQRCodeCreate, q, `{"action_name":"QR_NOPE"}`), 40097)
	show := func(ticket string) *http.Response {
		resp, err := srv.Client().Get(srv.URL + PathShowQRCode + "?ticket=" + url.QueryEscape(ticket))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := show(tmp["ticket"].(string))
	if resp.Header.Get("Content-Type") != "image/jpg" {
		t.Errorf("showqrcode Content-Type %q", resp.Header.Get("Content-Type"))
	}
	img, err := jpeg.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() != 430 {
		t.Errorf("showqrcode image: %v", err)
	}
	srv.Advance(2 * time.Minute)
	for _, tc := range []struct{ ticket, what string }{{tmp["ticket"].(string), "expired"}, {"nope", "unknown"}} {
		resp := show(tc.ticket)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Type") != contentType || !strings.Contains(string(b), `"errcode":40097`) {
			t.Errorf("showqrcode %s ticket: %s %s", tc.what, resp.Header.Get("Content-Type"), b)
		}
	}
	resp = show(perm["ticket"].(string))
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "image/jpg" {
		t.Error("a permanent QR code expired")
	}

	gen := api(t, srv, "POST", PathShortenGen, q, `{"long_data":"loooooong data","expire_seconds":60}`)
	key, _ := gen["short_key"].(string)
	if errcode(gen) != 0 || key == "" {
		t.Fatalf("shorten/gen: %v", gen)
	}
	fetched := api(t, srv, "POST", PathShortenFetch, q, `{"short_key":"`+key+`"}`)
	if fetched["long_data"] != "loooooong data" || fetched["expire_seconds"] != 60.0 {
		t.Errorf("shorten/fetch: %v", fetched)
	}
	srv.Advance(time.Minute)
	wantCode(t, "expired short_key", api(t, srv, "POST", PathShortenFetch, q, `{"short_key":"`+key+`"}`), 40097)
	q = tokenQ(t, srv) // the first token has expired with the clock
	if s := api(t, srv, "POST", PathShortURL, q, `{"action":"long2short","long_url":"http://example.com/a"}`); !strings.HasPrefix(s["short_url"].(string), "https://w.url.cn/s/") {
		t.Errorf("shorturl: %v", s)
	}
}

// multipartBody returns a form with the file part "media" (and more
// fields) and its content type.
func multipartBody(t *testing.T, filename, ctype string, data []byte, fields ...string) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="`+filename+`"`)
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(data)
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

// download GETs u and returns the answer with its body read.
func download(t *testing.T, srv *Server, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := srv.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestMedia(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	pic := append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{7}, 1000)...)
	body, ct := multipartBody(t, "cat.jpg", "image/jpeg", pic)
	up := apiReq(t, srv, "POST", PathMediaUpload, with(q, "type", "image"), body, ct)
	id, _ := up["media_id"].(string)
	if up["type"] != "image" || id == "" || up["created_at"] != float64(t0.Unix()) {
		t.Fatalf("media/upload: %v", up)
	}
	resp, got := download(t, srv, srv.URL+PathMediaGet+"?"+with(q, "media_id", id).Encode())
	if resp.StatusCode != 200 || !bytes.Equal(got, pic) || resp.Header.Get("Content-Type") != "image/jpeg" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="`+id+`.jpg"` {
		t.Errorf("media/get: %d %q %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"),
			resp.Header.Get("Content-Disposition"), len(got))
	}
	if m, ok := srv.MediaFile(testApp, id); !ok || m.Filename != "cat.jpg" || !bytes.Equal(m.Data, pic) {
		t.Errorf("MediaFile: %+v %v", m.Filename, ok)
	}

	// A video comes back as JSON with a URL that serves it.
	body, ct = multipartBody(t, "clip.mp4", "", []byte("....ftypmp42 not really a video"))
	vid := apiReq(t, srv, "POST", PathMediaUpload, with(q, "type", "video"), body, ct)
	v := api(t, srv, "GET", PathMediaGet, with(q, "media_id", vid["media_id"].(string)), "")
	vurl, _ := v["video_url"].(string)
	if resp, b := download(t, srv, vurl); resp.StatusCode != 200 || string(b) != "....ftypmp42 not really a video" {
		t.Errorf("video_url %s: %d %s", vurl, resp.StatusCode, b)
	}

	wantCode(t, "unknown media_id", api(t, srv, "GET", PathMediaGet, with(q, "media_id", "nope"), ""), 40007)
	body, ct = multipartBody(t, "a.txt", "", []byte("x"))
	wantCode(t, "bad type", apiReq(t, srv, "POST", PathMediaUpload, with(q, "type", "file"), body, ct), 40004)
	body, ct = multipartBody(t, "big.jpg", "image/jpeg", make([]byte, 65<<10))
	wantCode(t, "thumb too big", apiReq(t, srv, "POST", PathMediaUpload, with(q, "type", "thumb"), body, ct), 40012)
	wantCode(t, "no multipart", api(t, srv, "POST", PathMediaUpload, with(q, "type", "image"), "{}"), 41005)
	var empty bytes.Buffer
	mw := multipart.NewWriter(&empty)
	mw.WriteField("other", "x")
	mw.Close()
	wantCode(t, "no media part", apiReq(t, srv, "POST", PathMediaUpload, with(q, "type", "image"), &empty, mw.FormDataContentType()), 41005)

	// Temporary media are kept three days.
	srv.Advance(3*24*time.Hour - time.Second)
	q = tokenQ(t, srv)
	if resp, _ := download(t, srv, srv.URL+PathMediaGet+"?"+with(q, "media_id", id).Encode()); resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Error("media gone before three days")
	}
	srv.Advance(time.Second)
	wantCode(t, "media after three days", api(t, srv, "GET", PathMediaGet, with(q, "media_id", id), ""), 40007)
}

func TestMaterial(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	add := func(typ, name string, data []byte, fields ...string) obj {
		body, ct := multipartBody(t, name, "", data, fields...)
		return apiReq(t, srv, "POST", PathMaterialAdd, with(q, "type", typ), body, ct)
	}
	png := []byte("\x89PNG\r\n\x1a\n0000")
	img := add("image", "logo.png", png)
	srv.Advance(time.Second)
	add("image", "second.png", png)
	vid := add("video", "v.mp4", []byte("video bytes"), "description", `{"title":"T","introduction":"I"}`)
	if img["url"] == nil || vid["url"] != nil || vid["media_id"] == nil {
		t.Fatalf("add_material: %v %v", img, vid)
	}
	count := api(t, srv, "GET", PathMaterialCount, q, "")
	if count["image_count"] != 2.0 || count["video_count"] != 1.0 || count["voice_count"] != 0.0 || count["news_count"] != 0.0 {
		t.Errorf("get_materialcount: %v", count)
	}
	page := api(t, srv, "POST", PathMaterialBatchGet, q, `{"type":"image","offset":0,"count":1}`)
	items := page["item"].([]any)
	if page["total_count"] != 2.0 || page["item_count"] != 1.0 || items[0].(obj)["name"] != "second.png" {
		t.Errorf("batchget_material: %v", page)
	}
	wantCode(t, "batchget count 0", api(t, srv, "POST", PathMaterialBatchGet, q, `{"type":"image","count":0}`), 40097)
	wantCode(t, "batchget bad type", api(t, srv, "POST", PathMaterialBatchGet, q, `{"type":"file","count":1}`), 40004)
	if news := api(t, srv, "POST", PathMaterialBatchGet, q, `{"type":"news","count":20}`); news["total_count"] != 0.0 {
		t.Errorf("news: %v", news)
	}

	// get_material: an image is the file, a video JSON.
	req, _ := http.NewRequest("POST", srv.URL+PathMaterialGet+"?"+q.Encode(), strings.NewReader(`{"media_id":"`+img["media_id"].(string)+`"}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, png) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("get_material image: %q %q", resp.Header.Get("Content-Type"), b)
	}
	v := api(t, srv, "POST", PathMaterialGet, q, `{"media_id":"`+vid["media_id"].(string)+`"}`)
	if v["title"] != "T" || v["description"] != "I" || v["down_url"] == nil {
		t.Errorf("get_material video: %v", v)
	}
	if r, _ := download(t, srv, img["url"].(string)); r.StatusCode != 200 {
		t.Errorf("material url: %d", r.StatusCode)
	}
	// A temporary media_id is not a material, and the other way round.
	wantCode(t, "del", api(t, srv, "POST", PathMaterialDel, q, `{"media_id":"`+img["media_id"].(string)+`"}`), 0)
	wantCode(t, "get deleted", api(t, srv, "POST", PathMaterialGet, q, `{"media_id":"`+img["media_id"].(string)+`"}`), 40007)
	wantCode(t, "media/get of a material", api(t, srv, "GET", PathMediaGet, with(q, "media_id", vid["media_id"].(string)), ""), 40007)
}

const (
	miniApp    = "wxmini0123456789a"
	miniSecret = "mini-secret-0123456789"
)

func miniToken(t *testing.T, srv *Server) string {
	t.Helper()
	r := call(t, srv, "GET", PathToken, url.Values{"grant_type": {"client_credential"}, "appid": {miniApp}, "secret": {miniSecret}}, "")
	if r.AccessToken == "" {
		t.Fatalf("Mini Program token: %+v", r)
	}
	return r.AccessToken
}

func TestMiniProgram(t *testing.T) {
	for _, kind := range []Kind{KindMiniProgram, KindMiniGame} {
		t.Run(string(kind), func(t *testing.T) {
			srv := newTestServer(t, WithAppKind(miniApp, miniSecret, kind))
			q := url.Values{"access_token": {miniToken(t, srv)}}
			for _, typ := range []string{"jsapi", "wx_card"} {
				wantCode(t, "getticket "+typ, api(t, srv, "GET", PathTicket, with(q, "type", typ), ""), 48001)
			}
			wantCode(t, "menu (official accounts only)", api(t, srv, "GET", PathMenuGet, q, ""), 48001)
			wantCode(t, "business call", api(t, srv, "GET", PathCallbackIP, q, ""), 0)
			wantCode(t, "a family path", api(t, srv, "POST", "/wxa/getwxacodeunlimit", q, `{"scene":"a"}`), 0)

			login := func(code string) obj {
				return api(t, srv, "GET", PathJSCode2Session, url.Values{"appid": {miniApp}, "secret": {miniSecret},
					"js_code": {code}, "grant_type": {"authorization_code"}}, "")
			}
			s := login("test-alice")
			openid, _ := s["openid"].(string)
			if openid != OpenIDForCode(miniApp, "test-alice") || !validOpenID(openid) || len(s["session_key"].(string)) != 24 {
				t.Errorf("jscode2session: %v", s)
			}
			if again := login("test-alice"); again["openid"] != openid {
				t.Error("the same code gave another OpenID")
			}
			if bob := login("test-bob"); bob["openid"] == openid {
				t.Error("two codes gave one OpenID")
			}
			wantCode(t, "invalid code", login("0a3xyz"), 40029)
			wantCode(t, "missing code", login(""), 41008)
			base := url.Values{"appid": {miniApp}, "secret": {miniSecret}, "js_code": {"test"}, "grant_type": {"authorization_code"}}
			for _, tc := range []struct {
				q    url.Values
				want int
			}{
				{with(base, "grant_type", "client_credential"), 40002},
				{with(base, "appid", ""), 41002},
				{with(base, "appid", "wxnope"), 40013},
				{with(base, "appid", testApp, "secret", testSecret), 40013}, // an official account
				{with(base, "secret", ""), 41004},
				{with(base, "secret", "wrong"), 40125},
			} {
				wantCode(t, "jscode2session "+tc.q.Encode(), api(t, srv, "GET", PathJSCode2Session, tc.q, ""), tc.want)
			}
			// The OpenID it gave is a user a custom message can reach.
			wantCode(t, "custom send to the logged-in user", api(t, srv, "POST", PathCustomSend, q,
				`{"touser":"`+openid+`","msgtype":"text","text":{"content":"hi"}}`), 0)
			if st := srv.Stats().Apps[miniApp]; st.Kind != kind || st.Fetches[PathToken] != 1 {
				t.Errorf("Stats.Apps[%s] = %+v", miniApp, st)
			}
		})
	}
	srv := newTestServer(t, WithAppKind(miniApp, miniSecret, KindMiniProgram), WithMiniTicketCode(40048))
	q := url.Values{"access_token": {miniToken(t, srv)}, "type": {"jsapi"}}
	wantCode(t, "WithMiniTicketCode(40048)", api(t, srv, "GET", PathTicket, q, ""), 40048)

	// A code other than 48001 or 40048 is ignored: 0 would pass for a
	// ticket without one.
	for _, code := range []int{0, 40013} {
		srv := newTestServer(t, WithAppKind(miniApp, miniSecret, KindMiniProgram), WithMiniTicketCode(code))
		q := url.Values{"access_token": {miniToken(t, srv)}, "type": {"jsapi"}}
		wantCode(t, fmt.Sprintf("WithMiniTicketCode(%d)", code), api(t, srv, "GET", PathTicket, q, ""), 48001)
	}
}

// TestBusinessQuotas: the business APIs count against daily quotas that
// openapi/quota/get reports, and answer 45009 past them.
func TestBusinessQuotas(t *testing.T) {
	srv := newTestServer(t, WithDailyQuota(PathMenuGet, 1))
	q := tokenQ(t, srv)
	api(t, srv, "POST", PathMenuCreate, q, `{"button":[{"type":"click","name":"a","key":"k"}]}`)
	got := api(t, srv, "POST", PathQuotaGet, q, `{"cgi_path":"`+PathMenuCreate+`"}`)
	if num(got, "quota", "daily_limit") != 1000 || num(got, "quota", "used") != 1 || num(got, "quota", "remain") != 999 {
		t.Errorf("quota/get menu/create: %v", got)
	}
	wantCode(t, "first menu/get", api(t, srv, "GET", PathMenuGet, q, ""), 0)
	wantCode(t, "second menu/get", api(t, srv, "GET", PathMenuGet, q, ""), 45009)
}

// TestClearQuotaMiniTokens: clear_quota leaves a Mini Program's token
// quota alone unless told otherwise, and resets its other counts.
func TestClearQuotaMiniTokens(t *testing.T) {
	for _, keep := range []bool{true, false} {
		opts := []Option{WithAppKind(miniApp, miniSecret, KindMiniProgram), WithDailyQuota(PathToken, 1), WithDailyQuota(PathCallbackIP, 1)}
		if !keep {
			opts = append(opts, WithClearQuotaKeepsTokens(KindMiniProgram, false))
		}
		srv := newTestServer(t, opts...)
		tok := miniToken(t, srv)
		q := url.Values{"access_token": {tok}}
		api(t, srv, "GET", PathCallbackIP, q, "")
		wantCode(t, "over the business quota", api(t, srv, "GET", PathCallbackIP, q, ""), 45009)
		wantCode(t, "clear_quota", api(t, srv, "POST", PathClearQuota, q, `{"appid":"`+miniApp+`"}`), 0)
		wantCode(t, "business call after clear_quota", api(t, srv, "GET", PathCallbackIP, q, ""), 0)
		r := call(t, srv, "GET", PathToken, url.Values{"grant_type": {"client_credential"}, "appid": {miniApp}, "secret": {miniSecret}}, "")
		if want := map[bool]int{true: 45009, false: 0}[keep]; r.Errcode != want {
			t.Errorf("keep %v: token after clear_quota: errcode %d, want %d", keep, r.Errcode, want)
		}
	}
}

// TestMediaURLsNeedNoControlPlane: the url, video_url and down_url the
// platform hands out serve the file to any caller that has them, as
// WeChat's do: with a control key set (the SDK does not know it), from an
// address that is not loopback, and with the control plane turned off.
func TestMediaURLsNeedNoControlPlane(t *testing.T) {
	for name, opt := range map[string]Option{
		"control key":      WithControlKey("secret-control-key"),
		"no control plane": WithoutControlPlane(),
	} {
		t.Run(name, func(t *testing.T) {
			srv := newTestServer(t, opt)
			q := tokenQ(t, srv)
			upload := func(path, typ, filename string, data []byte) string {
				body, ct := multipartBody(t, filename, "", data, "description", `{"title":"T","introduction":"I"}`)
				m := apiReq(t, srv, "POST", path, with(q, "type", typ), body, ct)
				id, _ := m["media_id"].(string)
				if id == "" {
					t.Fatalf("%s %s: %v", path, typ, m)
				}
				return id
			}
			png := []byte("\x89PNG\r\n\x1a\n0000")
			body, ct := multipartBody(t, "logo.png", "", png)
			img := apiReq(t, srv, "POST", PathMaterialAdd, with(q, "type", "image"), body, ct)
			tmpVideo := upload(PathMediaUpload, "video", "a.mp4", []byte("temporary video"))
			permVideo := upload(PathMaterialAdd, "video", "b.mp4", []byte("permanent video"))
			urls := map[string]string{
				"material url": img["url"].(string),
				"video_url":    api(t, srv, "GET", PathMediaGet, with(q, "media_id", tmpVideo), "")["video_url"].(string),
				"down_url":     api(t, srv, "POST", PathMaterialGet, q, `{"media_id":"`+permVideo+`"}`)["down_url"].(string),
			}
			want := map[string]string{"material url": string(png), "video_url": "temporary video", "down_url": "permanent video"}
			for what, u := range urls {
				if strings.Contains(u, controlPrefix) {
					t.Errorf("%s %s is in the control plane", what, u)
				}
				if resp, b := download(t, srv, u); resp.StatusCode != 200 || string(b) != want[what] {
					t.Errorf("%s %s: HTTP %d %q", what, u, resp.StatusCode, b)
				}
				// An SDK on another machine.
				pu, _ := url.Parse(u)
				req := httptest.NewRequest("GET", pu.Path, nil)
				req.RemoteAddr, req.Host = "203.0.113.7:4242", "fake-wechat:3200"
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != 200 || rec.Body.String() != want[what] {
					t.Errorf("%s from a remote caller: HTTP %d %q", what, rec.Code, rec.Body)
				}
			}
			if resp, _ := download(t, srv, srv.URL+mediaPrefix+"nope"); resp.StatusCode != 404 {
				t.Errorf("unknown media: HTTP %d", resp.StatusCode)
			}
			req, _ := http.NewRequest("POST", urls["down_url"], nil)
			if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 405 {
				t.Errorf("POST to a media URL: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
		})
	}
}

// stalledWriter is a client that stops reading: its first Write tells
// writing and then waits for release.
type stalledWriter struct {
	*httptest.ResponseRecorder
	writing, release chan struct{}
	once             sync.Once
}

func (w *stalledWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.writing); <-w.release })
	return w.ResponseRecorder.Write(b)
}

// TestMediaSlowReader: a file is written without the platform's lock, so
// a client that does not read a 10 MiB video stalls only itself; a token
// fetch meanwhile is answered.
func TestMediaSlowReader(t *testing.T) {
	srv := newTestServer(t)
	q := tokenQ(t, srv)
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	upload := func(path, typ string, data []byte) string {
		body, ct := multipartBody(t, "f", "application/octet-stream", data)
		m := apiReq(t, srv, "POST", path, with(q, "type", typ), body, ct)
		if m["media_id"] == nil {
			t.Fatalf("%s: %v", path, m)
		}
		return m["media_id"].(string)
	}
	video := upload(PathMediaUpload, "video", big)
	image := upload(PathMediaUpload, "image", big[:1<<20])
	material := upload(PathMaterialAdd, "image", big[:1<<20])
	for what, req := range map[string]*http.Request{
		"/_media/{id}": httptest.NewRequest("GET", mediaPrefix+video, nil),
		"/_fake/media": httptest.NewRequest("GET", controlPrefix+"media/"+video, nil),
		"media/get":    httptest.NewRequest("GET", PathMediaGet+"?"+with(q, "media_id", image).Encode(), nil),
		"get_material": httptest.NewRequest("POST", PathMaterialGet+"?"+q.Encode(), strings.NewReader(`{"media_id":"`+material+`"}`)),
	} {
		req.RemoteAddr, req.Host = "127.0.0.1:4242", "127.0.0.1"
		w := &stalledWriter{ResponseRecorder: httptest.NewRecorder(), writing: make(chan struct{}), release: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeHTTP(w, req)
		}()
		<-w.writing
		locked := srv.mu.TryLock()
		if locked {
			srv.mu.Unlock()
			if tok := getToken(t, srv).AccessToken; tok == "" {
				t.Errorf("%s: no token while the file is stalled", what)
			}
		} else {
			t.Errorf("%s: the platform's lock is held while the file is written", what)
		}
		close(w.release)
		<-done
		if w.Code != 200 || w.Body.Len() < 1<<20 {
			t.Errorf("%s: HTTP %d, %d bytes", what, w.Code, w.Body.Len())
		}
	}
}
