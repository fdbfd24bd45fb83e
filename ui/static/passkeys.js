// passkeys.js: sign in with a passkey, and add passkeys on the account
// page. Progressive: every page works without it (the password form stays).
// The server sends WebAuthn options as JSON with binary fields in
// base64url; this file turns them into ArrayBuffers and back.
(function () {
  "use strict";

  function toBuffer(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toBase64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // post sends JSON with the CSRF token in a header and returns the JSON
  // answer; a refusal rejects with the server's words (err.fromServer).
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (!resp.ok) {
          var err = new Error(data.error_description || data.error);
          err.fromServer = true;
          throw err;
        }
        return data;
      });
    });
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    pk.user.id = toBuffer(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o, mediation, signal) {
    var pk = o.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    var opts = { publicKey: pk };
    if (mediation) opts.mediation = mediation;
    if (signal) opts.signal = signal;
    return opts;
  }

  // credentialJSON is a new credential or an assertion as the server reads it.
  function credentialJSON(c) {
    var r = c.response;
    var out = {
      id: c.id,
      rawId: toBase64url(c.rawId),
      type: c.type,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(r.clientDataJSON) }
    };
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = toBase64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      if (r.userHandle) out.response.userHandle = toBase64url(r.userHandle);
    }
    return out;
  }

  function showError(box, text) {
    var el = document.getElementById("passkey-error");
    if (!el) {
      el = document.createElement("p");
      el.id = "passkey-error";
      el.className = "alert";
      el.setAttribute("role", "alert");
      box.insertBefore(el, box.firstChild);
    }
    el.textContent = text;
    el.hidden = false;
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.fetch);
  }

  // setupLogin offers the passkey button and, where the browser has it,
  // passkeys in the account field's autofill (conditional mediation).
  function setupLogin(box) {
    if (!supported()) return;
    box.hidden = false;
    var csrf = box.getAttribute("data-csrf");
    var returnTo = box.getAttribute("data-return-to");
    var pending = null;

    function signIn(conditional) {
      if (pending) pending.abort(); // one WebAuthn request at a time
      var ctl = window.AbortController ? new AbortController() : null;
      pending = ctl;
      return post("/passkeys/login/begin", csrf, { conditional: conditional })
        .then(function (o) {
          return navigator.credentials.get(requestOptions(o, conditional ? "conditional" : "", ctl && ctl.signal));
        })
        .then(function (c) {
          return post("/passkeys/login/finish", csrf, { credential: credentialJSON(c), return_to: returnTo });
        })
        .then(function (data) { window.location.assign(data.redirect); });
    }

    function failed(err, quiet) {
      if (err && err.name === "AbortError") return;
      if (quiet && !(err && err.fromServer)) return;
      showError(box, err && err.fromServer ? err.message : box.getAttribute("data-failed"));
    }

    document.getElementById("passkey-login-button").addEventListener("click", function () {
      signIn(false).catch(function (err) { failed(err, false); });
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) signIn(true).catch(function (err) { failed(err, true); });
      });
    }
  }

  function setupRegister(box) {
    var button = document.getElementById("passkey-register-button");
    if (!supported()) {
      showError(box, box.getAttribute("data-unsupported"));
      button.disabled = true;
      return;
    }
    var csrf = box.getAttribute("data-csrf");
    button.addEventListener("click", function () {
      button.disabled = true;
      var name = document.getElementById("passkey-name").value;
      post("/passkeys/register/begin", csrf, {})
        .then(function (o) { return navigator.credentials.create(creationOptions(o)); })
        .then(function (c) {
          return post("/passkeys/register/finish", csrf, { name: name, credential: credentialJSON(c) });
        })
        .then(function (data) { window.location.assign(data.redirect); })
        .catch(function (err) {
          button.disabled = false;
          showError(box, err && err.fromServer ? err.message : box.getAttribute("data-failed"));
        });
    });
  }

  // setupSecondFactor offers a passkey instead of a code on the
  // second-factor page of a sign-in whose password was right.
  function setupSecondFactor(box) {
    if (!supported()) return;
    box.hidden = false;
    var csrf = box.getAttribute("data-csrf");
    var button = document.getElementById("passkey-mfa-button");
    button.addEventListener("click", function () {
      button.disabled = true;
      post("/login/mfa/passkey/begin", csrf, {})
        .then(function (o) { return navigator.credentials.get(requestOptions(o)); })
        .then(function (c) { return post("/login/mfa/passkey/finish", csrf, { credential: credentialJSON(c) }); })
        .then(function (data) { window.location.assign(data.redirect); })
        .catch(function (err) {
          button.disabled = false;
          if (err && err.name === "AbortError") return;
          showError(box, err && err.fromServer ? err.message : box.getAttribute("data-failed"));
        });
    });
  }

  var login = document.getElementById("passkey-login");
  if (login) setupLogin(login);
  var register = document.getElementById("passkey-register");
  if (register) setupRegister(register);
  var mfa = document.getElementById("passkey-mfa");
  if (mfa) setupSecondFactor(mfa);
})();
