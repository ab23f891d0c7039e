// GENX storefront: progressive enhancement only. Every page works without this file:
// the buy and re-send forms post normally, and the success page explains itself.
(function () {
  "use strict";

  var SESSION_ID = /^cs_[A-Za-z0-9_]{8,250}$/;
  var REF = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;  // as the checkout function accepts
  var CLICK_ID = /^[A-Za-z0-9_-]{22,64}$/;  // likewise
  var params = new URLSearchParams(window.location.search);

  function say(form, text) {
    var status = form.querySelector(".form-status");
    if (status) { status.textContent = text; }
  }

  function busy(form, on) {
    var button = form.querySelector("button[type=submit]");
    if (!button) { return; }
    button.disabled = on;
    if (on) { button.setAttribute("aria-busy", "true"); } else { button.removeAttribute("aria-busy"); }
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit"
    });
  }

  // Keep ?session_id=... and friends when switching language.
  function keepQuery() {
    if (!window.location.search) { return; }
    document.querySelectorAll("a[data-keep-query]").forEach(function (link) {
      link.href = link.href.split("?")[0] + window.location.search;
    });
  }

  // A random id per click on Buy (16 bytes, base64url): retries of the click carry it
  // again, so they get the same Checkout Session; another buyer's click never does.
  function newClickId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Buy: JSON to the checkout function, then go to the session's URL. If the script
  // cannot reach the function at all, fall back to the plain form post (with the same
  // click id, so a request that did arrive is not a second session).
  function enhanceBuy(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = { locale: form.elements.locale.value };
      var ref = params.get("ref");
      if (ref && REF.test(ref)) { body.ref = ref; }
      var click = form.elements.click_id;  // the page's inline script filled it already
      if (click && !CLICK_ID.test(click.value) && window.crypto && window.crypto.getRandomValues) {
        click.value = newClickId();
      }
      if (click && CLICK_ID.test(click.value)) { body.click_id = click.value; }
      busy(form, true);
      say(form, form.dataset.msgWorking);
      postJson(form.action, body).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok && data && typeof data.url === "string") {
            window.location.assign(data.url);
            return;
          }
          busy(form, false);
          say(form, response.status === 429 ? form.dataset.msgBusy : form.dataset.msgError);
        });
      }, function () {
        form.submit();
      });
    });
  }

  // Re-send: the function answers every accepted request the same; show it inline.
  function enhanceResend(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var email = form.elements.email;
      if (!email.checkValidity()) { email.reportValidity(); return; }
      busy(form, true);
      say(form, form.dataset.msgWorking);
      postJson(form.action, { email: email.value, locale: form.elements.locale.value })
        .then(function (response) {
          busy(form, false);
          if (response.status === 202) {
            say(form, form.dataset.msgDone);
            email.value = "";
          } else if (response.status === 429) {
            say(form, form.dataset.msgRateLimited);
          } else if (response.status === 400) {
            say(form, form.dataset.msgInvalid);
          } else {
            say(form, form.dataset.msgError);
          }
        }, function () {
          busy(form, false);
          say(form, form.dataset.msgError);
        });
    });
  }

  // Success page: poll the order status until it settles.
  var ENDED = { refunded: true, disputed: true, revoked: true, rejected: true };
  var FINAL = { fulfilled: true, failed: true, ended: true };

  function showState(box, state, email) {
    box.querySelectorAll("[data-state]").forEach(function (line) {
      line.hidden = line.dataset.state !== state;
    });
    if (email) {
      box.querySelectorAll(".slot-email").forEach(function (slot) { slot.textContent = email; });
    }
    box.dataset.current = state;
  }

  function pollStatus(box) {
    var sessionId = params.get("session_id");
    if (!sessionId || !SESSION_ID.test(sessionId)) { showState(box, "missing"); return; }
    var url = box.dataset.orderStatus + "?session_id=" + encodeURIComponent(sessionId);
    var attempt = 0;
    var failures = 0;
    showState(box, "checking");

    function next() {
      attempt += 1;
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "omit" })
        .then(function (response) {
          if (!response.ok) { throw new Error("status " + response.status); }
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          var state = ENDED[data.state] ? "ended" : data.state;
          if (state === "pending" && attempt > 30) { state = "slow"; }
          showState(box, state, data.email_masked);
          if (!FINAL[state]) { schedule(); }
        }, function () {
          failures += 1;
          if (failures >= 5) { showState(box, "error"); return; }
          schedule();
        });
    }

    function schedule() {
      if (attempt >= 90) { return; }
      window.setTimeout(next, Math.min(1000 + attempt * 250, 5000));
    }

    next();
  }

  document.addEventListener("DOMContentLoaded", function () {
    keepQuery();
    document.querySelectorAll("form[data-buy]").forEach(enhanceBuy);
    document.querySelectorAll("form[data-resend]").forEach(enhanceResend);
    var box = document.getElementById("order-status");
    if (box) { pollStatus(box); }
  });
})();
