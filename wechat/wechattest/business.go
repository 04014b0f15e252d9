package wechattest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Paths of the business APIs the platform models with state of their own
// (menus, users and tags, messages, QR codes, short links, media).
// Any other path under an API family answers {"errcode":0,"errmsg":"ok"}
// once the access_token checks out.
const (
	PathMenuCreate       = "/cgi-bin/menu/create"
	PathMenuGet          = "/cgi-bin/menu/get"
	PathMenuDelete       = "/cgi-bin/menu/delete"
	PathSelfMenuInfo     = "/cgi-bin/get_current_selfmenu_info"
	PathUserInfo         = "/cgi-bin/user/info"
	PathUserInfoBatch    = "/cgi-bin/user/info/batchget"
	PathUserList         = "/cgi-bin/user/get"
	PathTagsCreate       = "/cgi-bin/tags/create"
	PathTagsGet          = "/cgi-bin/tags/get"
	PathTagsUpdate       = "/cgi-bin/tags/update"
	PathTagsDelete       = "/cgi-bin/tags/delete"
	PathTagsTagging      = "/cgi-bin/tags/members/batchtagging"
	PathTagsUntagging    = "/cgi-bin/tags/members/batchuntagging"
	PathTagsOfUser       = "/cgi-bin/tags/getidlist"
	PathTagUsers         = "/cgi-bin/user/tag/get"
	PathCustomSend       = "/cgi-bin/message/custom/send"
	PathTemplateSend     = "/cgi-bin/message/template/send"
	PathQRCodeCreate     = "/cgi-bin/qrcode/create"
	PathShowQRCode       = "/cgi-bin/showqrcode"
	PathShortURL         = "/cgi-bin/shorturl"
	PathShortenGen       = "/cgi-bin/shorten/gen"
	PathShortenFetch     = "/cgi-bin/shorten/fetch"
	PathMediaUpload      = "/cgi-bin/media/upload"
	PathMediaGet         = "/cgi-bin/media/get"
	PathMaterialAdd      = "/cgi-bin/material/add_material"
	PathMaterialGet      = "/cgi-bin/material/get_material"
	PathMaterialDel      = "/cgi-bin/material/del_material"
	PathMaterialBatchGet = "/cgi-bin/material/batchget_material"
	PathMaterialCount    = "/cgi-bin/material/get_materialcount"
	PathJSCode2Session   = "/sns/jscode2session"
)

// TestOpenIDs are the followers every official account starts with: they
// are listed by user/get, and user/info knows them. Any other string of 28
// characters from [A-Za-z0-9_-] is taken for a follower too; anything else
// is 40003 "invalid openid".
var TestOpenIDs = []string{DefaultOpenID, "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", "oLVPpjkttuZTbwDwN7vjHNlqsmPs"}

// mediaLifetime is how long temporary media stay downloadable.
const mediaLifetime = 3 * 24 * time.Hour

// maxBody bounds what a business call may upload: the largest media
// (10 MB) and the multipart framing.
const maxBody = 11 << 20

// mediaLimits are the size limits of temporary and permanent media by type,
// and the errcode for a file above it.
var mediaLimits = map[string]struct {
	max  int
	code int
}{
	"image": {10 << 20, 40009},
	"voice": {2 << 20, 40010},
	"video": {10 << 20, 40011},
	"thumb": {64 << 10, 40012},
}

// bizState is one app's state behind the business APIs.
type bizState struct {
	menu      []json.RawMessage // the buttons of the menu, nil if none
	tags      map[int]string
	nextTag   int
	userTags  map[string][]int // openid → tag ids
	media     map[string]*Media
	qrcodes   map[string]time.Time // ticket → expiry (zero: permanent)
	shortKeys map[string]*shortLink
	sent      []SentMessage
	msgID     int64
}

type shortLink struct {
	long    string
	created time.Time
	expires time.Time
}

func newBusiness() bizState {
	return bizState{
		tags:      map[int]string{2: "星标组"},
		nextTag:   100,
		userTags:  map[string][]int{},
		media:     map[string]*Media{},
		qrcodes:   map[string]time.Time{},
		shortKeys: map[string]*shortLink{},
		msgID:     200228332,
	}
}

// A Media is a file uploaded with media/upload (temporary) or
// material/add_material (permanent). The platform never changes one once
// stored (a deletion drops it from the map), so it sends the bytes
// without holding its lock.
type Media struct {
	ID          string
	Type        string // image, voice, video or thumb
	Permanent   bool
	Filename    string // as uploaded
	ContentType string // as uploaded, or sniffed
	Data        []byte
	Created     time.Time
	Description string // the description form field of a permanent video
}

// A SentMessage is a message the code under test sent through
// message/custom/send or message/template/send.
type SentMessage struct {
	Path   string          `json:"path"`    // PathCustomSend or PathTemplateSend
	ToUser string          `json:"touser"`  // the recipient's OpenID
	Type   string          `json:"msgtype"` // msgtype, or "template"
	Body   json.RawMessage `json:"body"`    // the request body as sent
	Time   time.Time       `json:"time"`    // the platform's clock
}

// Messages returns the messages appID has sent, oldest first.
func (p *Platform) Messages(appID string) []SentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil {
		return nil
	}
	return slices.Clone(a.biz.sent)
}

// MediaFile returns the media appID uploaded as mediaID, temporary or
// permanent, whether or not it has expired.
func (p *Platform) MediaFile(appID, mediaID string) (Media, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appID]
	if a == nil || a.biz.media[mediaID] == nil {
		return Media{}, false
	}
	m := *a.biz.media[mediaID]
	m.Data = slices.Clone(m.Data)
	return m, true
}

// An apiCall is one business call whose access_token checked out.
type apiCall struct {
	p    *Platform
	w    http.ResponseWriter
	r    *http.Request
	path string
	a    *app
	now  time.Time
	body []byte
	err  error // reading the body

	// file is the media to send once p.mu is released: a file may be
	// 10 MiB, and a slow reader must not hold up the whole platform.
	file *Media
}

func (c *apiCall) fail(code int, msg string) { c.p.fail(c.w, c.path, code, msg) }
func (c *apiCall) ok()                       { writeJSON(c.w, okReply) }

// decode reads the JSON body into v, answering 44002 or 47001 itself when
// it cannot.
func (c *apiCall) decode(v any) bool {
	switch {
	case c.err != nil:
		c.fail(47001, "")
		return false
	case len(bytes.TrimSpace(c.body)) == 0:
		c.fail(44002, "")
		return false
	case json.Unmarshal(c.body, v) != nil:
		c.fail(47001, "")
		return false
	}
	return true
}

// A bizRoute is a business API: its method, whether only official accounts
// may call it (Mini Programs and Mini Games get 48001), and its handler.
type bizRoute struct {
	method string
	oaOnly bool
	handle func(c *apiCall)
}

// serve reads the body, checks the access_token, the account kind and the
// daily quota, and runs the handler under p.mu; a file the handler chose
// (apiCall.file) is written after p.mu is released.
func (b bizRoute) serve(p *Platform, w http.ResponseWriter, r *http.Request) {
	c := &apiCall{p: p, w: w, r: r, path: r.URL.Path}
	if r.Method == http.MethodPost {
		c.body, c.err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if c.err == nil && len(c.body) > maxBody {
			c.err = errors.New("body too large")
		}
	}
	b.run(c)
	if c.file != nil {
		writeMedia(w, c.file) // a Media is never changed once stored
	}
}

// run is serve's part under p.mu.
func (b bizRoute) run(c *apiCall) {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	c.now = p.Now()
	if c.a = p.authorize(c.w, c.path, c.r.URL.Query().Get("access_token"), c.now); c.a == nil {
		return
	}
	if b.oaOnly && c.a.kind.mini() {
		c.fail(48001, "")
		return
	}
	if p.overQuota(c.a, c.path) {
		c.fail(45009, "")
		return
	}
	c.a.used[c.path]++
	b.handle(c)
}

var businessRoutes = map[string]bizRoute{
	PathMenuCreate:       {http.MethodPost, true, serveMenuCreate},
	PathMenuGet:          {http.MethodGet, true, serveMenuGet},
	PathMenuDelete:       {http.MethodGet, true, serveMenuDelete},
	PathSelfMenuInfo:     {http.MethodGet, true, serveSelfMenuInfo},
	PathUserInfo:         {http.MethodGet, true, serveUserInfo},
	PathUserInfoBatch:    {http.MethodPost, true, serveUserInfoBatch},
	PathUserList:         {http.MethodGet, true, serveUserList},
	PathTagsCreate:       {http.MethodPost, true, serveTagsCreate},
	PathTagsGet:          {http.MethodGet, true, serveTagsGet},
	PathTagsUpdate:       {http.MethodPost, true, serveTagsUpdate},
	PathTagsDelete:       {http.MethodPost, true, serveTagsDelete},
	PathTagsTagging:      {http.MethodPost, true, func(c *apiCall) { serveTagging(c, true) }},
	PathTagsUntagging:    {http.MethodPost, true, func(c *apiCall) { serveTagging(c, false) }},
	PathTagsOfUser:       {http.MethodPost, true, serveTagsOfUser},
	PathTagUsers:         {http.MethodPost, true, serveTagUsers},
	PathCustomSend:       {http.MethodPost, false, serveCustomSend},
	PathTemplateSend:     {http.MethodPost, true, serveTemplateSend},
	PathQRCodeCreate:     {http.MethodPost, true, serveQRCodeCreate},
	PathShortURL:         {http.MethodPost, true, serveShortURL},
	PathShortenGen:       {http.MethodPost, true, serveShortenGen},
	PathShortenFetch:     {http.MethodPost, true, serveShortenFetch},
	PathMediaUpload:      {http.MethodPost, false, func(c *apiCall) { serveUpload(c, false) }},
	PathMediaGet:         {http.MethodGet, false, serveMediaGet},
	PathMaterialAdd:      {http.MethodPost, true, func(c *apiCall) { serveUpload(c, true) }},
	PathMaterialGet:      {http.MethodPost, true, serveMaterialGet},
	PathMaterialDel:      {http.MethodPost, true, serveMaterialDel},
	PathMaterialBatchGet: {http.MethodPost, true, serveMaterialBatchGet},
	PathMaterialCount:    {http.MethodGet, true, serveMaterialCount},
}

// validOpenID reports whether s has the shape of an OpenID: 28 characters
// from the URL-safe base64 alphabet.
func validOpenID(s string) bool {
	if len(s) != 28 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// --- menus ---

func serveMenuCreate(c *apiCall) {
	var req struct {
		Button []json.RawMessage `json:"button"`
	}
	if !c.decode(&req) {
		return
	}
	if len(req.Button) == 0 || len(req.Button) > 3 {
		c.fail(40016, "")
		return
	}
	for _, b := range req.Button {
		var sub struct {
			SubButton []json.RawMessage `json:"sub_button"`
		}
		if json.Unmarshal(b, &sub) != nil || len(sub.SubButton) > 5 {
			c.fail(40023, "")
			return
		}
	}
	c.a.biz.menu = req.Button
	c.ok()
}

func serveMenuGet(c *apiCall) {
	if c.a.biz.menu == nil {
		c.fail(46003, "")
		return
	}
	writeJSON(c.w, map[string]any{"menu": map[string]any{"button": c.a.biz.menu}})
}

func serveMenuDelete(c *apiCall) {
	c.a.biz.menu = nil
	c.ok()
}

// serveSelfMenuInfo answers get_current_selfmenu_info: the menu with each
// sub_button array wrapped as {"list":[…]}, as that API shows it.
func serveSelfMenuInfo(c *apiCall) {
	buttons := []any{}
	for _, raw := range c.a.biz.menu {
		var b map[string]any
		json.Unmarshal(raw, &b) // menu/create checked it
		if sub, ok := b["sub_button"]; ok {
			b["sub_button"] = map[string]any{"list": sub}
		}
		buttons = append(buttons, b)
	}
	open := 0
	if c.a.biz.menu != nil {
		open = 1
	}
	writeJSON(c.w, map[string]any{"is_menu_open": open, "selfmenu_info": map[string]any{"button": buttons}})
}

// --- users and tags ---

type userInfo struct {
	Subscribe      int    `json:"subscribe"`
	OpenID         string `json:"openid"`
	Language       string `json:"language"`
	SubscribeTime  int64  `json:"subscribe_time"`
	Remark         string `json:"remark"`
	GroupID        int    `json:"groupid"`
	TagIDList      []int  `json:"tagid_list"`
	SubscribeScene string `json:"subscribe_scene"`
	QRScene        int    `json:"qr_scene"`
	QRSceneStr     string `json:"qr_scene_str"`
}

// user returns what user/info says of openid: a subscribed follower since
// a time derived from the OpenID.
func (c *apiCall) user(openid, lang string) userInfo {
	if lang == "" {
		lang = "zh_CN"
	}
	h := sha256.Sum256([]byte(openid))
	since := int64(1700000000 + int(h[0])<<16 + int(h[1])<<8 + int(h[2]))
	tags := slices.Clone(c.a.biz.userTags[openid])
	if tags == nil {
		tags = []int{}
	}
	return userInfo{Subscribe: 1, OpenID: openid, Language: lang, SubscribeTime: since, TagIDList: tags,
		SubscribeScene: "ADD_SCENE_QR_CODE"}
}

func serveUserInfo(c *apiCall) {
	q := c.r.URL.Query()
	if openid := q.Get("openid"); !validOpenID(openid) {
		c.fail(40003, "")
	} else {
		writeJSON(c.w, c.user(openid, q.Get("lang")))
	}
}

func serveUserInfoBatch(c *apiCall) {
	var req struct {
		UserList []struct {
			OpenID string `json:"openid"`
			Lang   string `json:"lang"`
		} `json:"user_list"`
	}
	if !c.decode(&req) {
		return
	}
	if len(req.UserList) == 0 || len(req.UserList) > 100 {
		c.fail(40032, "")
		return
	}
	out := make([]userInfo, 0, len(req.UserList))
	for _, u := range req.UserList {
		if !validOpenID(u.OpenID) {
			c.fail(40003, "")
			return
		}
		out = append(out, c.user(u.OpenID, u.Lang))
	}
	writeJSON(c.w, map[string]any{"user_info_list": out})
}

// openIDPage answers a list of OpenIDs from those after next: the shape of
// user/get and user/tag/get.
func openIDPage(all []string, next string, withTotal bool) map[string]any {
	start := 0
	if next != "" {
		start = slices.Index(all, next) + 1
	}
	page := all[start:]
	if len(page) > 10000 {
		page = page[:10000]
	}
	resp := map[string]any{"count": len(page), "next_openid": ""}
	if withTotal {
		resp["total"] = len(all)
	}
	if len(page) > 0 {
		resp["data"] = map[string]any{"openid": page}
		resp["next_openid"] = page[len(page)-1]
	}
	return resp
}

func serveUserList(c *apiCall) {
	writeJSON(c.w, openIDPage(TestOpenIDs, c.r.URL.Query().Get("next_openid"), true))
}

type tagReq struct {
	Tag struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	} `json:"tag"`
}

// checkTagName answers 45158 or 45157 for a name that is too long, empty
// or taken by a tag other than id.
func (c *apiCall) checkTagName(name string, id int) bool {
	switch {
	case len(name) > 30:
		c.fail(45158, "")
		return false
	case strings.TrimSpace(name) == "" || !utf8.ValidString(name):
		c.fail(45157, "")
		return false
	}
	for other, n := range c.a.biz.tags {
		if n == name && other != id {
			c.fail(45157, "")
			return false
		}
	}
	return true
}

func serveTagsCreate(c *apiCall) {
	var req tagReq
	if !c.decode(&req) || !c.checkTagName(req.Tag.Name, -1) {
		return
	}
	if len(c.a.biz.tags) >= 100 {
		c.fail(45056, "")
		return
	}
	id := c.a.biz.nextTag
	c.a.biz.nextTag++
	c.a.biz.tags[id] = req.Tag.Name
	writeJSON(c.w, map[string]any{"tag": map[string]any{"id": id, "name": req.Tag.Name}})
}

// tagMembers returns the OpenIDs carrying tag id, sorted.
func (c *apiCall) tagMembers(id int) []string {
	var out []string
	for openid, tags := range c.a.biz.userTags {
		if slices.Contains(tags, id) {
			out = append(out, openid)
		}
	}
	slices.Sort(out)
	return out
}

func serveTagsGet(c *apiCall) {
	ids := make([]int, 0, len(c.a.biz.tags))
	for id := range c.a.biz.tags {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	tags := make([]map[string]any, len(ids))
	for i, id := range ids {
		tags[i] = map[string]any{"id": id, "name": c.a.biz.tags[id], "count": len(c.tagMembers(id))}
	}
	writeJSON(c.w, map[string]any{"tags": tags})
}

// userTag finds the tag a tags/update or tags/delete names: 45058 for the
// reserved ids 0, 1 and 2, 45159 for one that does not exist.
func (c *apiCall) userTag(id int) bool {
	switch {
	case id >= 0 && id <= 2:
		c.fail(45058, "")
		return false
	case c.a.biz.tags[id] == "":
		c.fail(45159, "")
		return false
	}
	return true
}

func serveTagsUpdate(c *apiCall) {
	var req tagReq
	if !c.decode(&req) || !c.userTag(req.Tag.ID) || !c.checkTagName(req.Tag.Name, req.Tag.ID) {
		return
	}
	c.a.biz.tags[req.Tag.ID] = req.Tag.Name
	c.ok()
}

func serveTagsDelete(c *apiCall) {
	var req tagReq
	if !c.decode(&req) || !c.userTag(req.Tag.ID) {
		return
	}
	delete(c.a.biz.tags, req.Tag.ID)
	for openid, tags := range c.a.biz.userTags {
		c.a.biz.userTags[openid] = slices.DeleteFunc(tags, func(t int) bool { return t == req.Tag.ID })
	}
	c.ok()
}

func serveTagging(c *apiCall, add bool) {
	var req struct {
		OpenIDList []string `json:"openid_list"`
		TagID      int      `json:"tagid"`
	}
	if !c.decode(&req) {
		return
	}
	switch {
	case len(req.OpenIDList) == 0 || len(req.OpenIDList) > 50:
		c.fail(40032, "")
		return
	case c.a.biz.tags[req.TagID] == "":
		c.fail(45159, "")
		return
	}
	for _, openid := range req.OpenIDList {
		if !validOpenID(openid) {
			c.fail(40003, "")
			return
		}
		if add && !slices.Contains(c.a.biz.userTags[openid], req.TagID) && len(c.a.biz.userTags[openid]) >= 20 {
			c.fail(45059, "")
			return
		}
	}
	for _, openid := range req.OpenIDList {
		tags := slices.DeleteFunc(c.a.biz.userTags[openid], func(t int) bool { return t == req.TagID })
		if add {
			tags = append(tags, req.TagID)
		}
		c.a.biz.userTags[openid] = tags
	}
	c.ok()
}

func serveTagsOfUser(c *apiCall) {
	var req struct {
		OpenID string `json:"openid"`
	}
	if !c.decode(&req) {
		return
	}
	if !validOpenID(req.OpenID) {
		c.fail(40003, "")
		return
	}
	tags := slices.Clone(c.a.biz.userTags[req.OpenID])
	if tags == nil {
		tags = []int{}
	}
	writeJSON(c.w, map[string]any{"tagid_list": tags})
}

func serveTagUsers(c *apiCall) {
	var req struct {
		TagID      int    `json:"tagid"`
		NextOpenID string `json:"next_openid"`
	}
	if !c.decode(&req) {
		return
	}
	if c.a.biz.tags[req.TagID] == "" {
		c.fail(45159, "")
		return
	}
	writeJSON(c.w, openIDPage(c.tagMembers(req.TagID), req.NextOpenID, false))
}

// --- messages ---

// customTypes are the msgtype values message/custom/send takes.
var customTypes = []string{"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle",
	"msgmenu", "wxcard", "miniprogrampage", "link"}

func serveCustomSend(c *apiCall) {
	var req map[string]json.RawMessage
	if !c.decode(&req) {
		return
	}
	var to, typ string
	json.Unmarshal(req["touser"], &to)
	json.Unmarshal(req["msgtype"], &typ)
	switch {
	case !validOpenID(to):
		c.fail(40003, "")
		return
	case !slices.Contains(customTypes, typ):
		c.fail(40008, "")
		return
	case len(req[typ]) == 0 || req[typ][0] != '{':
		c.fail(47001, "data format error: no "+typ+" object")
		return
	}
	c.record(to, typ)
	c.ok()
}

func serveTemplateSend(c *apiCall) {
	var req struct {
		ToUser     string `json:"touser"`
		TemplateID string `json:"template_id"`
	}
	if !c.decode(&req) {
		return
	}
	switch {
	case !validOpenID(req.ToUser):
		c.fail(40003, "")
		return
	case req.TemplateID == "":
		c.fail(40037, "")
		return
	}
	c.record(req.ToUser, "template")
	c.a.biz.msgID++
	writeJSON(c.w, map[string]any{"errcode": 0, "errmsg": "ok", "msgid": c.a.biz.msgID})
}

func (c *apiCall) record(to, typ string) {
	c.a.biz.sent = append(c.a.biz.sent, SentMessage{Path: c.path, ToUser: to, Type: typ,
		Body: json.RawMessage(slices.Clone(c.body)), Time: c.now})
}

// --- QR codes and short links ---

// qrImage is the JPEG showqrcode answers with: a 430-pixel square of
// modules, as large as the live platform's, that no scanner will read.
var qrImage = func() []byte {
	const size, module = 430, 10
	img := image.NewGray(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			c := color.Gray{Y: 255}
			if (x/module*7+y/module*13)%5 < 2 {
				c.Y = 0
			}
			img.SetGray(x, y, c)
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 75}) // writing to a bytes.Buffer cannot fail
	return b.Bytes()
}()

// Limits of qrcode/create: a temporary code lives 60 s unless told, 30
// days at most.
const (
	qrDefaultLife = 60
	qrMaxLife     = 2592000
)

func serveQRCodeCreate(c *apiCall) {
	var req struct {
		ExpireSeconds int    `json:"expire_seconds"`
		ActionName    string `json:"action_name"`
	}
	if !c.decode(&req) {
		return
	}
	// The ticket is standard base64, '+', '/' and '=' included, so a
	// client must URL-encode it for showqrcode, as the documentation says.
	ticket := "gQ" + base64.StdEncoding.EncodeToString(randomBytes(70))
	resp := map[string]any{"ticket": ticket, "url": "http://weixin.qq.com/q/" + randomString(16)}
	switch req.ActionName {
	case "QR_SCENE", "QR_STR_SCENE":
		life := req.ExpireSeconds
		if life <= 0 {
			life = qrDefaultLife
		}
		life = min(life, qrMaxLife)
		c.a.biz.qrcodes[ticket] = c.now.Add(time.Duration(life) * time.Second)
		resp["expire_seconds"] = life
	case "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE":
		c.a.biz.qrcodes[ticket] = time.Time{}
	default:
		c.fail(40097, "invalid args, action_name must be QR_SCENE, QR_STR_SCENE, QR_LIMIT_SCENE or QR_LIMIT_STR_SCENE")
		return
	}
	writeJSON(c.w, resp)
}

// serveShowQRCode answers showqrcode?ticket= with the QR code's image, as
// mp.weixin.qq.com does; it takes no access_token. A ticket the platform
// did not issue, or one past its expire_seconds, gets 40097.
func (p *Platform) serveShowQRCode(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	p.mu.Lock()
	defer p.mu.Unlock()
	found := false
	for _, a := range p.apps {
		if exp, ok := a.biz.qrcodes[ticket]; ok && (exp.IsZero() || p.Now().Before(exp)) {
			found = true
			break
		}
	}
	if !found {
		p.fail(w, PathShowQRCode, 40097, "invalid args, unknown or expired ticket")
		return
	}
	w.Header().Set("Content-Type", "image/jpg")
	w.Header().Set("Cache-Control", "max-age=604800")
	w.Write(qrImage)
}

func serveShortURL(c *apiCall) {
	var req struct {
		Action  string `json:"action"`
		LongURL string `json:"long_url"`
	}
	if !c.decode(&req) {
		return
	}
	if req.Action != "long2short" || req.LongURL == "" {
		c.fail(40097, "invalid args, want action long2short and a long_url")
		return
	}
	writeJSON(c.w, map[string]any{"errcode": 0, "errmsg": "ok", "short_url": "https://w.url.cn/s/" + randomString(6)})
}

func serveShortenGen(c *apiCall) {
	var req struct {
		LongData      string `json:"long_data"`
		ExpireSeconds int    `json:"expire_seconds"`
	}
	if !c.decode(&req) {
		return
	}
	if req.LongData == "" || len(req.LongData) > 4096 {
		c.fail(40097, "invalid args, long_data must be 1 to 4096 bytes")
		return
	}
	life := req.ExpireSeconds
	if life <= 0 || life > qrMaxLife {
		life = qrMaxLife
	}
	key := randomString(16)
	c.a.biz.shortKeys[key] = &shortLink{long: req.LongData, created: c.now, expires: c.now.Add(time.Duration(life) * time.Second)}
	writeJSON(c.w, map[string]any{"errcode": 0, "errmsg": "ok", "short_key": key})
}

func serveShortenFetch(c *apiCall) {
	var req struct {
		ShortKey string `json:"short_key"`
	}
	if !c.decode(&req) {
		return
	}
	l := c.a.biz.shortKeys[req.ShortKey]
	if l == nil || !c.now.Before(l.expires) {
		c.fail(40097, "invalid args, unknown or expired short_key")
		return
	}
	writeJSON(c.w, map[string]any{"errcode": 0, "errmsg": "ok", "long_data": l.long,
		"create_time": l.created.Unix(), "expire_seconds": int(l.expires.Sub(c.now) / time.Second)})
}

// --- media ---

// serveUpload stores the multipart part "media" as temporary media
// (media/upload) or a permanent material (material/add_material).
func serveUpload(c *apiCall, permanent bool) {
	typ := c.r.URL.Query().Get("type")
	limit, ok := mediaLimits[typ]
	if !ok {
		c.fail(40004, "")
		return
	}
	if c.err != nil {
		c.fail(limit.code, "")
		return
	}
	_, params, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		c.fail(41005, "media data missing, send multipart/form-data with a part named media")
		return
	}
	var m *Media
	mr := multipart.NewReader(bytes.NewReader(c.body), params["boundary"])
	desc := ""
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		switch part.FormName() {
		case "media":
			data, err := io.ReadAll(io.LimitReader(part, int64(limit.max)+1))
			if err != nil {
				c.fail(41005, "")
				return
			}
			if len(data) > limit.max {
				c.fail(limit.code, "")
				return
			}
			m = &Media{Type: typ, Permanent: permanent, Filename: part.FileName(), Data: data,
				ContentType: part.Header.Get("Content-Type")}
		case "description":
			b, _ := io.ReadAll(io.LimitReader(part, 4096))
			desc = string(b)
		}
	}
	if m == nil || len(m.Data) == 0 {
		c.fail(41005, "")
		return
	}
	if m.ContentType == "" || m.ContentType == "application/octet-stream" {
		m.ContentType = http.DetectContentType(m.Data)
	}
	m.ID, m.Created, m.Description = randomString(48), c.now, desc
	c.a.biz.media[m.ID] = m
	if !permanent {
		writeJSON(c.w, map[string]any{"type": typ, "media_id": m.ID, "created_at": m.Created.Unix()})
		return
	}
	resp := map[string]any{"media_id": m.ID}
	if typ == "image" {
		resp["url"] = c.mediaURL(m)
	}
	writeJSON(c.w, resp)
}

// mediaPrefix is where the platform serves uploaded files by ID: the
// url, video_url and down_url it hands out. It lies outside the control
// plane, as WeChat's file URLs need no credential: whoever has the URL
// may fetch it, with or without a control key, and WithoutControlPlane
// keeps it.
const mediaPrefix = "/_media/"

// mediaURL is where the platform serves m's bytes, on the host the call
// came to.
func (c *apiCall) mediaURL(m *Media) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host + mediaPrefix + m.ID
}

// serveMediaFile answers GET /_media/{id} (and its control-plane alias
// /_fake/media/{id}) with the file, temporary or permanent, or 404.
func (p *Platform) serveMediaFile(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ctlFail(w, http.StatusMethodNotAllowed, "%s %s: use GET", r.Method, r.URL.Path)
		return
	}
	m := p.mediaByID(id)
	if m == nil {
		ctlFail(w, http.StatusNotFound, "no media %q", id)
		return
	}
	writeMedia(w, m)
}

// mediaByID returns the media stored as id by any app, or nil. A Media is
// never changed once stored, so the caller may read it without p.mu.
func (p *Platform) mediaByID(id string) *Media {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.apps {
		if m := a.biz.media[id]; m != nil {
			return m
		}
	}
	return nil
}

// writeMedia sends m's bytes as media/get does.
func writeMedia(w http.ResponseWriter, m *Media) {
	ext := path.Ext(m.Filename)
	if ext == "" {
		if exts, _ := mime.ExtensionsByType(m.ContentType); len(exts) > 0 {
			ext = exts[0]
		}
	}
	w.Header().Set("Content-Type", m.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+m.ID+ext+`"`)
	w.Header().Set("Cache-Control", "no-cache, must-revalidate")
	w.Header().Set("Content-Length", strconv.Itoa(len(m.Data)))
	w.Write(m.Data)
}

func serveMediaGet(c *apiCall) {
	m := c.a.biz.media[c.r.URL.Query().Get("media_id")]
	if m == nil || m.Permanent || !c.now.Before(m.Created.Add(mediaLifetime)) {
		c.fail(40007, "")
		return
	}
	if m.Type == "video" {
		writeJSON(c.w, map[string]any{"video_url": c.mediaURL(m)})
		return
	}
	c.file = m
}

// material returns the permanent material the JSON body names, or answers
// 40007.
func (c *apiCall) material() *Media {
	var req struct {
		MediaID string `json:"media_id"`
	}
	if !c.decode(&req) {
		return nil
	}
	m := c.a.biz.media[req.MediaID]
	if m == nil || !m.Permanent {
		c.fail(40007, "")
		return nil
	}
	return m
}

func serveMaterialGet(c *apiCall) {
	m := c.material()
	switch {
	case m == nil:
	case m.Type == "video":
		var d struct {
			Title        string `json:"title"`
			Introduction string `json:"introduction"`
		}
		json.Unmarshal([]byte(m.Description), &d)
		writeJSON(c.w, map[string]any{"title": d.Title, "description": d.Introduction, "down_url": c.mediaURL(m)})
	default:
		c.file = m
	}
}

func serveMaterialDel(c *apiCall) {
	if m := c.material(); m != nil {
		delete(c.a.biz.media, m.ID)
		c.ok()
	}
}

// materials returns the permanent materials of type typ, newest first.
func (c *apiCall) materials(typ string) []*Media {
	var out []*Media
	for _, m := range c.a.biz.media {
		if m.Permanent && (typ == "" || m.Type == typ) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Media) int {
		if d := b.Created.Compare(a.Created); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func serveMaterialBatchGet(c *apiCall) {
	var req struct {
		Type   string `json:"type"`
		Offset int    `json:"offset"`
		Count  int    `json:"count"`
	}
	if !c.decode(&req) {
		return
	}
	if _, ok := mediaLimits[req.Type]; !ok && req.Type != "news" {
		c.fail(40004, "")
		return
	}
	if req.Count < 1 || req.Count > 20 || req.Offset < 0 {
		c.fail(40097, "invalid args, count must be 1 to 20 and offset at least 0")
		return
	}
	all := c.materials(req.Type)
	if req.Type == "news" {
		all = nil // the platform models no articles
	}
	page := all[min(req.Offset, len(all)):min(req.Offset+req.Count, len(all))]
	items := make([]map[string]any, len(page))
	for i, m := range page {
		items[i] = map[string]any{"media_id": m.ID, "name": m.Filename, "update_time": m.Created.Unix()}
		if m.Type == "image" {
			items[i]["url"] = c.mediaURL(m)
		}
	}
	writeJSON(c.w, map[string]any{"total_count": len(all), "item_count": len(items), "item": items})
}

func serveMaterialCount(c *apiCall) {
	writeJSON(c.w, map[string]any{
		"voice_count": len(c.materials("voice")), "video_count": len(c.materials("video")),
		"image_count": len(c.materials("image")), "news_count": 0})
}
