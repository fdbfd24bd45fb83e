// qrlogin.js: on the sign-in page, follow the QR-code sign-in the phone
// decides. It asks the server for the state about once a second; once the
// phone approves it posts the "I have approved, continue" form, which
// works by hand without this file. An expired or declined code is replaced
// by a new one.
(function () {
  "use strict";

  var form = document.getElementById("qr-complete");
  var img = document.getElementById("qr-image");
  var status = document.getElementById("qr-status");
  if (!form || !img || !status || !window.fetch) return;

  var every = parseInt(form.getAttribute("data-poll"), 10) || 1000;
  var url = form.getAttribute("data-status-url");
  var done = false;
  var failures = 0;

  function say(name) {
    status.textContent = form.getAttribute("data-msg-" + name) || "";
  }

  // fresh loads a new code: each image load starts a new sign-in and
  // hands this browser its secret.
  function fresh(name) {
    say(name);
    whenLoaded();
    img.src = img.src.split("?")[0] + "?n=" + Date.now();
  }

  // whenLoaded polls again once the image has loaded, so its cookie is
  // set; an image refused (too many codes) leaves the form for the person.
  function whenLoaded() {
    img.onload = function () { setTimeout(poll, every); };
    img.onerror = function () { done = true; say("lost"); };
  }

  function poll() {
    if (done) return;
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 404) return { status: "lost" };
        if (!resp.ok) throw new Error(String(resp.status));
        return resp.json();
      })
      .then(function (data) {
        failures = 0;
        switch (data.status) {
          case "approved":
            done = true;
            say("approved");
            form.submit();
            return;
          case "declined":
            fresh("declined");
            return;
          case "expired":
            fresh("expired");
            return;
          case "lost":
            // Another tab took over this browser's code, or cookies are
            // off: stop, and leave the form for the person.
            done = true;
            say("lost");
            return;
        }
        setTimeout(poll, every);
      })
      .catch(function () {
        failures++;
        setTimeout(poll, Math.min(every * Math.pow(2, failures), 30000));
      });
  }

  if (img.complete && img.naturalWidth > 0) {
    setTimeout(poll, every);
  } else {
    whenLoaded();
  }
})();
