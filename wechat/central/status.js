// The status page's updater: every data-every ms it reads data-src (the
// JSON of GET /v1/status) and redraws the summary and every app's card as
// the server drew them; when the server stops answering it keeps the last
// data and marks the page stale. No library, no external request.
(function () {
  "use strict";
  var body = document.body;
  var every = Math.max(parseInt(body.dataset.every, 10) || 5000, 100);
  var src = new URL(body.dataset.src, location.href);
  src.username = ""; // a URL with credentials cannot be fetched; the browser sends the cached ones
  src.password = "";
  var conn = document.getElementById("conn");
  var connText = document.getElementById("conn-text");
  var connTime = document.getElementById("conn-time");
  var pause = document.getElementById("pause");
  var apps = document.getElementById("apps");
  var paused = false, inflight = false, timer = 0, lastNow = document.getElementById("now").getAttribute("datetime");

  var esc = function (s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  // dur, pct, clock, kindName, plural: as status.go's template functions.
  var dur = function (s) {
    if (s <= 0) return "0s";
    if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return s + "s";
  };
  var pct = function (p, q) { return q > 0 ? Math.min(Math.max(p / q * 100, 0), 100).toFixed(1) : "0"; };
  var barWidth = function (used, whole) { var p = pct(used, whole); return used > 0 && +p < 0.8 ? "0.8" : p; };
  var clock = function (t) { return t ? new Date(t).toISOString().slice(11, 16) + " UTC" : ""; };
  var kinds = { official_account: "Official Account", mini_program: "Mini Program", mini_game: "Mini Game" };
  var kindName = function (k) { return kinds[k] || k; };
  var plural = function (n, w) { return n + " " + w + (n === 1 ? "" : "s"); };
  var lanes = [["t-fetched", "fetched", 0, "fetched"], ["t-adopted", "adopted", 13, "adopted"], ["t-failed", "failed", 26, "failed"]];
  var gwOrder = ["ok", "errcode", "token_retried", "refused", "upstream_error"];

  function totals(a) {
    var f = 0, d = 0, x = 0;
    a.timeline.forEach(function (s) { f += s.fetched; d += s.adopted; x += s.failed; });
    return "Refreshes in the last 24 hours: " + f + " fetched, " + d + " adopted, " + x + " failed";
  }

  function marks(a, since) {
    var from = Date.parse(since), out = "";
    a.timeline.forEach(function (s) {
      var start = Date.parse(s.start), x = Math.max(Math.floor((start - from) / 60000), 0);
      lanes.forEach(function (l) {
        var n = s[l[3]];
        if (!n) return;
        var title = clock(s.start) + ": " + n + " " + l[1];
        if (l[3] === "failed" && s.errcode) title += " (errcode " + s.errcode + ")";
        out += '<rect class="' + l[0] + '" x="' + x + '" y="' + l[2] + '" width="9" height="10"><title>' + esc(title) + "</title></rect>";
      });
    });
    return out;
  }

  function summary(s) {
    return esc(plural(s.apps, "app")) + ': <span class="s-fresh">' + s.fresh + ' fresh</span>, <span class="s-stale">' + s.stale +
      ' stale</span>, <span class="s-invalid">' + s.invalid + " invalid</span>; " +
      (s.failing ? '<span class="s-invalid">' + esc(plural(s.failing, "app")) + " failing</span>" : "no failures");
  }

  function card(a, data) {
    var q = a.quota, st = esc(a.state), t = totals(a), h = "";
    h += '<div class="app-h">\n<h2 id="h-' + esc(a.app_id) + '" class="name">' + esc(a.name) + "</h2>\n";
    h += '<span class="state s-' + st + '"><span class="dot" aria-hidden="true"></span><span class="state-word">' + st + "</span></span>\n</div>\n";
    h += '<p class="meta"><code class="appid">' + esc(a.app_id) + '</code> · <span class="kind">' + esc(kindName(a.kind)) + "</span></p>\n";
    h += '<dl class="facts">\n<div class="fact"><dt>Token life</dt><dd>\n';
    h += '<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="meter" aria-valuemin="0" aria-valuemax="' + a.lifetime +
      '" aria-valuenow="' + a.expires_in + '" aria-label="Token life: ' + dur(a.expires_in) + ' left"><rect class="track" width="100" height="8"></rect>' +
      '<rect class="fill s-' + st + '" width="' + pct(a.expires_in, a.lifetime) + '" height="8"></rect></svg>\n';
    h += '<span class="life-text">' + (a.expires_at ? dur(a.expires_in) + " left · " +
      (a.refresh_in ? "refresh in " + dur(a.refresh_in) + " (" + clock(a.refresh_at) + ")" : "refresh due now") : "no token") + "</span>\n</dd></div>\n";
    h += '<div class="fact"><dt>Quota today</dt><dd>\n';
    h += '<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="meter" aria-valuemin="0" aria-valuemax="' + q.budget +
      '" aria-valuenow="' + q.used + '" aria-label="Quota: ' + q.used + " of " + q.budget + ' fetches used today"><rect class="track" width="100" height="8"></rect>' +
      '<rect class="fill quota" width="' + barWidth(q.used, q.budget) + '" height="8"></rect></svg>';
    if (q.hourly_cap && q.hour_used >= 0) {
      h += '\n<svg class="bar thin" viewBox="0 0 100 8" preserveAspectRatio="none" role="meter" aria-valuemin="0" aria-valuemax="' + q.hourly_cap +
        '" aria-valuenow="' + q.hour_used + '" aria-label="This hour: ' + q.hour_used + " of " + q.hourly_cap + ' tokens issued">' +
        '<rect class="track" width="100" height="8"></rect><rect class="fill hour" width="' + barWidth(q.hour_used, q.hourly_cap) + '" height="8"></rect></svg>';
    }
    h += "\n";
    h += '<span class="quota-text"><span class="q-used">' + q.used + '</span> of <span class="q-budget">' + q.budget + '</span> used · <span class="q-left">' +
      q.left + "</span> left" + (q.hourly_cap ? " · " + (q.hour_used >= 0 ? '<span class="q-hour">' + q.hour_used + "</span> of " + q.hourly_cap +
      " this hour" : "hourly cap " + q.hourly_cap) : "") + "</span>\n</dd></div>\n";
    h += '<div class="fact wide"><dt>Last 24 hours</dt><dd>\n';
    h += '<svg class="timeline" viewBox="0 0 1440 36" preserveAspectRatio="none" role="img" aria-label="' + esc(t) + '">' +
      '<rect class="lane" y="0" width="1440" height="10"></rect><rect class="lane" y="13" width="1440" height="10"></rect>' +
      '<rect class="lane" y="26" width="1440" height="10"></rect><path class="grid" d="M360 0V36M720 0V36M1080 0V36"></path>' + marks(a, data.since) + "</svg>\n";
    h += '<div class="axis" aria-hidden="true"><span>−24 h</span><span>−18 h</span><span>−12 h</span><span>−6 h</span><span>now</span></div>\n';
    h += '<p class="legend"><span class="key t-fetched" aria-hidden="true"></span>fetched <span class="key t-adopted" aria-hidden="true"></span>adopted ' +
      '<span class="key t-failed" aria-hidden="true"></span>failed · <span class="totals">' + esc(t) + "</span></p>\n</dd></div>\n";
    h += '<div class="fact"><dt>Last error</dt><dd class="last-error">' + (a.last_error ? '<span class="err">' + esc(a.last_error) + "</span> (" +
      clock(a.last_error_at) + ")" : "none") + (a.cooldown_until ? " · fetches paused until " + clock(a.cooldown_until) : "") + "</dd></div>\n";
    h += '<div class="fact"><dt>Store</dt><dd class="store">' + esc(a.store.status) + " · lock " +
      (a.store.lock === "waiting" ? "waiting " + dur(a.store.lock_wait_seconds || 0) + ", held by another process" : "free") + "</dd></div>";
    if (data.gateway) {
      var gw = a.gateway || {}, keys = gwOrder.filter(function (k) { return k in gw; });
      Object.keys(gw).sort().forEach(function (k) { if (gwOrder.indexOf(k) < 0) keys.push(k); });
      h += '\n<div class="fact"><dt>Gateway calls</dt><dd class="gateway">' + (keys.length ? keys.map(function (k) {
        return '<span class="gw gw-' + esc(k) + '">' + esc(k) + " <b>" + gw[k] + "</b></span> ";
      }).join("") : "none") + "</dd></div>";
    }
    return h + "\n</dl>";
  }

  function render(data) {
    document.getElementById("summary").innerHTML = summary(data.summary);
    var seen = {};
    data.apps.forEach(function (a) {
      var id = "app-" + a.app_id, el = document.getElementById(id);
      seen[id] = true;
      if (!el) {
        el = document.createElement("article");
        el.className = "app";
        el.id = id;
        el.tabIndex = 0;
        el.dataset.appId = a.app_id;
        el.setAttribute("aria-labelledby", "h-" + a.app_id);
      }
      apps.appendChild(el); // in the server's order
      el.dataset.state = a.state;
      el.innerHTML = "\n" + card(a, data) + "\n";
    });
    Array.prototype.slice.call(apps.querySelectorAll("article.app")).forEach(function (el) {
      if (!seen[el.id]) el.remove();
    });
    lastNow = data.now;
    body.dataset.updated = data.now;
  }

  // live and stale set the connection's state. Only the state is in the
  // live region, and it is rewritten only when it changes, so that a
  // screen reader announces a change, not every update.
  function say(text) {
    if (connText.textContent !== text) connText.textContent = text;
  }

  function live() {
    conn.dataset.stale = "false";
    body.classList.remove("is-stale");
    say("Live");
    connTime.innerHTML = 'server time <time id="now" datetime="' + esc(lastNow) + '">' + esc(clock(lastNow)) + "</time>";
  }

  function stale(why) {
    conn.dataset.stale = "true";
    body.classList.add("is-stale");
    say("Stale: the server is not answering (" + why + "); showing the data of " + clock(lastNow));
    connTime.textContent = "last tried " + new Date().toLocaleTimeString();
  }

  function poll() {
    timer = 0;
    if (inflight) return;
    inflight = true;
    var ctl = new AbortController(), t = setTimeout(function () { ctl.abort(); }, Math.max(every * 3, 3000));
    fetch(src, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctl.signal })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) { render(data); live(); })
      .catch(function (e) { stale(e.name === "AbortError" ? "timed out" : e.message || "no answer"); })
      .finally(function () { clearTimeout(t); inflight = false; schedule(); });
  }

  function schedule() {
    if (!paused && !timer) timer = setTimeout(poll, every);
  }

  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume updates" : "Pause updates";
    if (paused) { clearTimeout(timer); timer = 0; } else { poll(); }
  });
  schedule();
})();
