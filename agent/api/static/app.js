// Operator page: plain JS, no build step. Everything shown goes through textContent, and every
// word comes from the page's language table (agent/i18n.py): no code or state word is shown raw.
(function () {
  "use strict";
  var token = document.querySelector('meta[name="api-token"]').content;
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var T = data.t.ui;
  var POLL_MS = 2000;
  var lastSaved = null;   // the token of the last save: its print state is followed live
  var pendingKey = null;  // the Idempotency-Key of a submission not yet answered (reused on retry)

  function $(id) { return document.getElementById(id); }

  function say(table, key, fallback) {
    var t = data.t[table];
    return Object.prototype.hasOwnProperty.call(t, key) ? t[key] : t[fallback || "unknown"];
  }

  function state(prefix, value) {
    var key = prefix + "." + (value === null || value === undefined ? "none" : value);
    return Object.prototype.hasOwnProperty.call(data.t.states, key) ? data.t.states[key] : "-";
  }

  function api(path, method, body, headers) {
    var opts = { method: method || "GET", headers: { "Authorization": "Bearer " + token } };
    Object.keys(headers || {}).forEach(function (k) { opts.headers[k] = headers[k]; });
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        return { ok: r.ok, status: r.status, body: b };
      });
    });
  }

  // 16260000 -> "₹ 1,62,600.00" (Indian digit grouping)
  function money(paise) {
    var n = Math.round(Number(paise) || 0);
    var sign = n < 0 ? "-" : "";
    n = Math.abs(n);
    var r = String(Math.floor(n / 100));
    var p = String(n % 100).padStart(2, "0");
    if (r.length > 3) {
      var head = r.slice(0, -3), tail = r.slice(-3), groups = [];
      while (head.length > 2) { groups.unshift(head.slice(-2)); head = head.slice(0, -2); }
      if (head) { groups.unshift(head); }
      r = groups.join(",") + "," + tail;
    }
    return sign + "₹ " + r + "." + p;
  }

  function paiseOf(text) {
    var m = /^\s*([0-9]{1,9})(?:\.([0-9]{1,2}))?\s*$/.exec(text || "");
    if (!m) { return null; }
    return Number(m[1]) * 100 + Number(((m[2] || "") + "00").slice(0, 2));
  }

  function ist(iso) {
    if (!iso) { return T.never; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return "-"; }
    // 24-hour IST with Latin digits: no "am"/"pm" on the Hindi page, whatever the browser's locale data
    return d.toLocaleString("en-IN", { timeZone: "Asia/Kolkata", day: "2-digit", month: "2-digit",
      year: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  function serviceName(code) {
    var s = data.services[code];
    return s ? s.name : T.service;
  }

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "-" : String(text);
    tr.appendChild(td);
    return td;
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // --- the form --------------------------------------------------------------------------------
  function svc() { return data.services[$("service").value] || {}; }

  function activeFieldset() {
    return document.querySelector('fieldset.service-fields[data-service="' + $("service").value + '"]');
  }

  function setPerson(kind, mode) {
    var row = $(kind + "-row"), input = $(kind);
    row.hidden = mode === "none";
    input.disabled = mode === "none";
    input.required = mode === "required";
    input.setAttribute("aria-required", mode === "required" ? "true" : "false");
    $(kind + "-req").textContent = mode === "required" ? T.required : T.optional;
  }

  function updateTotal() {
    var s = svc();
    var amount = s.fee_only ? 0 : paiseOf($("amount").value);
    $("fee").textContent = money(s.fee_paise || 0);
    $("total").textContent = amount === null ? "-" : money(amount + (s.fee_paise || 0));
  }

  function onServiceChange() {
    var code = $("service").value, s = svc();
    document.querySelectorAll("fieldset.service-fields").forEach(function (fs) {
      var on = fs.getAttribute("data-service") === code;
      fs.hidden = !on;
      fs.disabled = !on;
    });
    $("amount-row").hidden = !!s.fee_only;
    $("amount").disabled = !!s.fee_only;
    $("fee-only").hidden = !s.fee_only;
    setPerson("mobile", s.mobile);
    setPerson("aadhaar", s.aadhaar);
    updateTotal();
  }

  function clearCitizenFields() {  // the service stays chosen: the next citizen often wants the same
    var fs = activeFieldset();
    if (fs) { fs.querySelectorAll("input, select").forEach(function (el) { el.value = ""; }); }
    ["amount", "mobile", "aadhaar"].forEach(function (id) { $(id).value = ""; });
    document.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    updateTotal();
  }

  function clearResult() {
    var el = $("result");
    el.hidden = true;
    el.className = "card";
    ["result-title", "result-token", "result-money", "result-print", "result-detail"].forEach(function (id) {
      $(id).textContent = "";
    });
    $("result-reprint").hidden = true;
    $("result-details").hidden = true;
    el.removeAttribute("data-token");
  }

  function showError(code, detail) {
    var el = $("result");
    el.hidden = false;
    el.className = "card error";
    $("result-title").textContent = T.failed + ": " + say("errors", code);
    if (detail && data.lang !== "en") {
      $("result-detail").textContent = String(detail);
      $("result-details").hidden = false;
    } else if (detail) {
      $("result-money").textContent = String(detail);
    }
    el.focus();
  }

  var printerState = "unknown";

  function printText(v) {
    var p = v.print && v.print.state ? v.print.state : v.print_state;
    var text = T.print + ": " + state("print", p);
    var trouble = ["ok", "unknown", "off", "disabled", "busy"].indexOf(printerState) < 0;
    if (p === "pending" && trouble) { text += " — " + state("printer", printerState); }
    return text;
  }

  function showSaved(v) {
    var el = $("result");
    el.hidden = false;
    el.className = "card ok";
    el.setAttribute("data-token", v.token);
    lastSaved = v.token;
    $("result-title").textContent = T.saved + " — " + serviceName(v.service);
    $("result-token").textContent = v.token;
    $("result-money").textContent = money(v.amount_paise) + " + " + money(v.fee_paise) + " = " +
      T.collect + " " + money(v.amount_paise + v.fee_paise);
    $("result-print").textContent = printText(v);
    $("result-reprint").hidden = v.kind !== "sale";
    el.scrollIntoView({ block: "nearest" });
    el.focus();
  }

  function markInvalid() {
    var bad = null;
    var scope = [activeFieldset(), $("amount-row"), $("mobile-row"), $("aadhaar-row")];
    scope.forEach(function (box) {
      if (!box || box.hidden) { return; }
      box.querySelectorAll("input, select").forEach(function (el) {
        if (el.disabled) { return; }
        var missing = el.required && !el.value.trim();
        if (missing) { el.setAttribute("aria-invalid", "true"); bad = bad || el; } else { el.removeAttribute("aria-invalid"); }
      });
    });
    return bad;
  }

  function formBody() {
    var body = { service: $("service").value, fields: {} };
    if (!$("amount").disabled) { body.amount = $("amount").value.trim(); }
    if (!$("mobile").disabled && $("mobile").value.trim()) { body.mobile = $("mobile").value.trim(); }
    if (!$("aadhaar").disabled && $("aadhaar").value.trim()) { body.aadhaar = $("aadhaar").value.trim(); }
    var fs = activeFieldset();
    if (fs) {
      fs.querySelectorAll("input, select").forEach(function (el) {
        if (el.value.trim()) { body.fields[el.name] = el.value.trim(); }
      });
    }
    return body;
  }

  function onSubmit(ev) {
    ev.preventDefault();
    clearResult();  // a stale "saved" never stays on screen next to a new attempt
    var bad = markInvalid();
    if (bad) { showError("invalid_input", null); bad.focus(); return; }
    pendingKey = pendingKey || newKey();
    $("submit").disabled = true;
    $("submit").textContent = T.saving;
    api("/api/transactions", "POST", formBody(), { "Idempotency-Key": pendingKey }).then(function (r) {
      if (r.ok) {
        pendingKey = null;
        showSaved(r.body);
        clearCitizenFields();
      } else {
        if (r.status < 500) { pendingKey = null; }  // refused: the next try is a new submission
        showError(r.body.error, r.body.detail);
      }
      refresh();
    }).catch(function () {
      showError("network", null);  // the key is kept: a retry can't make a second sale
    }).then(function () {
      $("submit").disabled = false;
      $("submit").textContent = T.submit;
    });
  }

  function reprint(tok) {
    return api("/api/transactions/" + encodeURIComponent(tok) + "/reprint", "POST").then(function (r) {
      var result = r.body && r.body.result ? r.body.result : {};
      if (r.ok && result.print_state !== "pending") {
        $("result").hidden = false;
        $("result-print").textContent = T.reprinted;
      } else {
        showError(r.ok ? "print_failed" : r.body.error, r.ok ? result.print_error : r.body.detail);
      }
      refresh();
    });
  }

  // --- status ----------------------------------------------------------------------------------
  function renderAlerts(list) {
    var box = $("alerts");
    box.textContent = "";
    (list || []).forEach(function (a) {
      var div = document.createElement("div");
      div.className = "alert " + (a.severity === "warning" ? "warning" : "error");
      div.setAttribute("data-code", a.code);
      div.textContent = say("alerts", a.code);
      box.appendChild(div);
    });
  }

  function renderStatus(s) {
    $("queue-depth").textContent = s.outbox && s.outbox.waiting !== undefined ? s.outbox.waiting : s.queue_depth;
    $("last-sync").textContent = ist(s.last_sync_at);
    $("tokens-left").textContent = s.tokens_remaining;
    var p = s.printer;  // {kind, state}
    var ps = typeof p === "string" ? p : (!p || p.kind === "none" ? "off" : (p.state || "unknown"));
    printerState = ps;
    $("printer-state").textContent = state("printer", ps);
    $("printer-state").setAttribute("data-state", ps);
    var alerts = s.alerts || [];
    renderAlerts(alerts);
    var revoked = alerts.some(function (a) { return a.code === "revoked"; });
    var st = revoked ? "revoked" : s.online === true ? "online" : s.online === false ? "offline" : "unknown";
    var badge = $("online-badge");
    badge.className = "badge " + st;
    badge.setAttribute("data-state", st);
    badge.textContent = T[st];
  }

  function renderRecent(items) {
    var tbody = $("recent");
    tbody.textContent = "";
    items.forEach(function (v) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-token", v.token || "");
      cell(tr, v.token);
      cell(tr, (v.kind === "void" ? T.void + ": " : "") + serviceName(v.service));
      cell(tr, money(v.amount_paise + v.fee_paise));
      cell(tr, ist(v.created_at));
      cell(tr, state("sync", v.sync_state)).setAttribute("data-state", v.sync_state || "");
      cell(tr, state("print", v.kind === "sale" ? v.print_state : "none"));
      var td = cell(tr, "");
      if (v.kind === "sale" && v.token) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "reprint small";
        b.textContent = T.reprint;
        b.setAttribute("aria-label", T.reprint + " " + v.token);
        b.addEventListener("click", function () { reprint(v.token); });
        td.textContent = "";
        td.appendChild(b);
      }
      if (v.token === lastSaved && v.kind === "sale") { $("result-print").textContent = printText(v); }
      tbody.appendChild(tr);
    });
  }

  function renderRejected(items) {
    var tbody = $("rejected");
    tbody.textContent = "";
    items.forEach(function (v) {
      var tr = document.createElement("tr");
      cell(tr, v.token);
      cell(tr, serviceName(v.service));
      cell(tr, say("reasons", v.sync_error));
      tbody.appendChild(tr);
    });
  }

  function renderDay(d) {
    $("day-count").textContent = d.count;
    $("day-cash").textContent = money(d.cash_paise);
    $("day-fees").textContent = money(d.fee_paise);
  }

  function refresh() {
    api("/api/status").then(function (r) { if (r.ok) { renderStatus(r.body); } }).catch(function () {});
    api("/api/transactions?limit=15").then(function (r) { if (r.ok) { renderRecent(r.body.items); } })
      .catch(function () {});
    api("/api/transactions?rejected=true&limit=50").then(function (r) {
      if (r.ok) { renderRejected(r.body.items); }
    }).catch(function () {});
    api("/api/day").then(function (r) { if (r.ok) { renderDay(r.body); } }).catch(function () {});
  }

  // --- follow-up of any token ------------------------------------------------------------------
  function lookupHint() {
    var st = KioskVerhoeff.tokenState($("lookup").value);
    var bad = st === "typo";
    $("lookup").setAttribute("aria-invalid", bad ? "true" : "false");
    $("lookup-hint").textContent = bad ? T.lookup_typo : "";
    $("lookup-hint").className = bad ? "hint error" : "hint";
    return st;
  }

  function line(box, label, value) {
    var div = document.createElement("div");
    div.textContent = label + ": " + value;
    box.appendChild(div);
  }

  function showLookup(r) {
    var box = $("lookup-result");
    box.textContent = "";
    box.className = r.ok ? "ok" : "error";
    box.scrollIntoView({ block: "nearest" });
    if (!r.ok) { box.textContent = say("errors", r.body.error); return; }
    if (r.body.source === "local") {
      var v = r.body.txn;
      line(box, T.lookup_local, v.token);
      line(box, T.service, serviceName(v.service));
      line(box, T.total, money(v.amount_paise + v.fee_paise));
      line(box, T.lookup_status, state("sync", v.sync_state));
      line(box, T.time, ist(v.created_at));
      return;
    }
    var s = r.body.status;
    line(box, T.lookup_server, s.token);
    line(box, T.lookup_status, state("lookup", s.status));
    if (s.service) { line(box, T.service, serviceName(s.service)); }
    if (s.kiosk_code) { line(box, T.lookup_kiosk, s.kiosk_code); }
    if (s.date) { line(box, T.lookup_date, s.date); }
    if (s.amount_paise !== undefined) { line(box, T.amount, money(s.amount_paise)); }
  }

  function onLookup(ev) {
    ev.preventDefault();
    $("lookup-result").textContent = "";
    var st = lookupHint();
    if (st !== "ok") {
      $("lookup-hint").textContent = st === "typo" ? T.lookup_typo : T.lookup_short;
      $("lookup-hint").className = "hint error";
      $("lookup").focus();
      return;  // a typo never reaches the API
    }
    var tok = $("lookup").value.trim().toUpperCase();
    api("/api/lookup/" + encodeURIComponent(tok)).then(showLookup).catch(function () {
      showLookup({ ok: false, body: { error: "network" } });
    });
  }

  // --- any kiosk's receipt, offline ------------------------------------------------------------
  function onVerify(ev) {
    ev.preventDefault();
    var box = $("verify-result");
    box.textContent = "";
    api("/api/receipts/verify", "POST", { qr: $("verify").value.trim() }).then(function (r) {
      box.className = r.ok ? "ok" : "error";
      box.scrollIntoView({ block: "nearest" });
      if (!r.ok) {
        box.textContent = T.verify_bad + ": " + say("errors", r.body.error === "invalid_input" ? "receipt_malformed" : r.body.error);
        return;
      }
      line(box, T.verify_ok, r.body.token);
      line(box, T.lookup_kiosk, r.body.kiosk_code);
      line(box, T.seq, r.body.seq);
    }).catch(function () { box.textContent = say("errors", "network"); });
  }

  function onDayPrint() {
    api("/api/day/print", "POST").then(function (r) {
      clearResult();
      if (r.ok) {
        $("result").hidden = false;
        $("result").className = "card ok";
        $("result-title").textContent = T.day_printed;
      } else {
        showError(r.body.error, r.body.detail);
      }
    });
  }

  $("service").addEventListener("change", function () { clearResult(); onServiceChange(); });
  $("amount").addEventListener("input", updateTotal);
  $("new-txn").addEventListener("submit", onSubmit);
  $("result-reprint").addEventListener("click", function () { if (lastSaved) { reprint(lastSaved); } });
  $("lookup").addEventListener("input", lookupHint);
  $("lookup-form").addEventListener("submit", onLookup);
  $("verify-form").addEventListener("submit", onVerify);
  $("day-print").addEventListener("click", onDayPrint);
  onServiceChange();
  refresh();
  setInterval(refresh, POLL_MS);
})();
