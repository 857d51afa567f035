// Operator page: plain JS, no build step. Everything shown goes through textContent.
(function () {
  "use strict";
  var token = document.querySelector('meta[name="api-token"]').content;
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var T = data.strings;
  var POLL_MS = 4000;

  function $(id) { return document.getElementById(id); }

  function api(path, method, body) {
    var opts = { method: method || "GET", headers: { "Authorization": "Bearer " + token } };
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

  function rupees(paise) {
    return (paise / 100).toFixed(2);
  }

  function ist(iso) {
    if (!iso) { return T.never; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.toLocaleString("en-IN", { timeZone: "Asia/Kolkata", dateStyle: "short", timeStyle: "short" });
  }

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "-" : String(text);
    tr.appendChild(td);
    return td;
  }

  // --- the form --------------------------------------------------------------------------------
  function activeFieldset() {
    return document.querySelector('fieldset.service-fields[data-service="' + $("service").value + '"]');
  }

  function onServiceChange() {
    var code = $("service").value;
    var svc = data.services[code] || {};
    document.querySelectorAll("fieldset.service-fields").forEach(function (fs) {
      var on = fs.getAttribute("data-service") === code;
      fs.hidden = !on;
      fs.disabled = !on;
    });
    $("fee").textContent = svc.fee || "";
    $("mobile-row").hidden = svc.mobile === "none";
    $("mobile").disabled = svc.mobile === "none";
    $("mobile").required = svc.mobile === "required";
    $("aadhaar-row").hidden = svc.aadhaar === "none";
    $("aadhaar").disabled = svc.aadhaar === "none";
    $("aadhaar").required = svc.aadhaar === "required";
  }

  function showResult(ok, text) {
    var el = $("result");
    el.className = ok ? "ok" : "error";
    el.textContent = text;
  }

  function onSubmit(ev) {
    ev.preventDefault();
    var body = { service: $("service").value, amount: $("amount").value.trim(), fields: {} };
    if (!$("mobile").disabled && $("mobile").value.trim()) { body.mobile = $("mobile").value.trim(); }
    if (!$("aadhaar").disabled && $("aadhaar").value.trim()) { body.aadhaar = $("aadhaar").value.trim(); }
    var fs = activeFieldset();
    if (fs) {
      fs.querySelectorAll("input").forEach(function (inp) {
        if (inp.value.trim()) { body.fields[inp.name] = inp.value.trim(); }
      });
    }
    $("submit").disabled = true;
    api("/api/transactions", "POST", body).then(function (r) {
      if (r.ok) {
        showResult(true, T.saved + " " + r.body.token);
        $("result").setAttribute("data-token", r.body.token);
        $("new-txn").reset();
        onServiceChange();
      } else {
        showResult(false, T.failed + ": " + (r.body.detail || r.status));
      }
      refresh();
    }).catch(function () {
      showResult(false, T.failed);
    }).then(function () {
      $("submit").disabled = false;
    });
  }

  // --- status and lists ------------------------------------------------------------------------
  function renderStatus(s) {
    $("queue-depth").textContent = s.queue_depth;
    $("last-sync").textContent = ist(s.last_sync_at);
    $("tokens-left").textContent = s.tokens_remaining;
    var p = s.printer;  // {kind, state} from the API, or the runner's own state string
    $("printer-state").textContent =
      typeof p === "string" ? p : (!p || p.kind === "none" ? "-" : (p.state || "unknown"));
    var badge = $("online-badge");
    var state = s.online === true ? "online" : s.online === false ? "offline" : "unknown";
    badge.className = "badge " + state;
    badge.textContent = T[state];
  }

  function renderRecent(items) {
    var tbody = $("recent");
    tbody.textContent = "";
    items.forEach(function (v) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-token", v.token || "");
      cell(tr, v.token);
      cell(tr, v.kind === "void" ? "VOID " + v.service : v.service);
      cell(tr, rupees(v.amount_paise));
      cell(tr, ist(v.created_at));
      cell(tr, v.sync_state);
      cell(tr, v.print_state);
      var td = cell(tr, "");
      if (v.kind === "sale" && v.token) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "reprint";
        b.textContent = T.reprint;
        b.addEventListener("click", function () {
          api("/api/transactions/" + encodeURIComponent(v.token) + "/reprint", "POST").then(function (r) {
            showResult(r.ok, r.ok ? T.reprint + " " + v.token : (r.body.detail || r.status));
          });
        });
        td.textContent = "";
        td.appendChild(b);
      }
      tbody.appendChild(tr);
    });
  }

  function renderRejected(items) {
    var tbody = $("rejected");
    tbody.textContent = "";
    items.forEach(function (v) {
      var tr = document.createElement("tr");
      cell(tr, v.token);
      cell(tr, v.service);
      cell(tr, v.sync_error);
      tbody.appendChild(tr);
    });
  }

  function refresh() {
    api("/api/status").then(function (r) { if (r.ok) { renderStatus(r.body); } });
    api("/api/transactions?limit=15").then(function (r) { if (r.ok) { renderRecent(r.body.items); } });
    api("/api/transactions?rejected=true&limit=50").then(function (r) {
      if (r.ok) { renderRejected(r.body.items); }
    });
  }

  $("service").addEventListener("change", onServiceChange);
  $("new-txn").addEventListener("submit", onSubmit);
  onServiceChange();
  refresh();
  setInterval(refresh, POLL_MS);
})();
