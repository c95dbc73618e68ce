// Failed htmx requests, made visible. Without this a fragment that fails to load (403, 500, an
// expired CSRF token, a closed SSH tunnel) changes nothing on the page and the person waits.
// A static file because the Content-Security-Policy forbids inline script.
//
// - a lost session: the server answers an htmx request with HX-Redirect to the login page (htmx
//   follows it); a plain redirect that htmx followed to the login page, or a 401, is sent there
//   too, so the login form never lands inside a fragment;
// - an expired CSRF token: the CSRF failure view marks its 403 with X-Clusterweb-Error: csrf;
// - anything else: a polite message in #request-error, cleared by the next successful request.
(function () {
  "use strict";

  var MESSAGES = {
    csrf: "This page has expired. Reload the page and try again.",
    403: "You do not have permission to do that.",
    404: "That is no longer here. Reload the page to see what is.",
    server: "Something went wrong on Clusterweb's side. Try again in a moment; if it keeps happening, tell an admin.",
    network: "Clusterweb could not be reached. Check that your SSH tunnel is still open, then try again."
  };

  function box() {
    return document.getElementById("request-error");
  }

  function show(text) {
    var element = box();
    if (!element) {
      return;
    }
    element.querySelector("[data-request-error-text]").textContent = text;
    element.hidden = false;
  }

  function hide() {
    var element = box();
    if (element) {
      element.hidden = true;
    }
  }

  function loginUrl() {
    return document.body.getAttribute("data-login-url") || "/login/";
  }

  function toLogin() {
    window.location.assign(loginUrl() + "?next=" + encodeURIComponent(window.location.pathname));
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 401) {
      toLogin();
    } else if (xhr.getResponseHeader("X-Clusterweb-Error") === "csrf") {
      show(MESSAGES.csrf);
    } else if (MESSAGES[xhr.status]) {
      show(MESSAGES[xhr.status]);
    } else if (xhr.status >= 500) {
      show(MESSAGES.server);
    } else {
      show("The request failed (HTTP " + xhr.status + "). Reload the page and try again.");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    show(MESSAGES.network);
  });
  document.addEventListener("htmx:timeout", function () {
    show(MESSAGES.network);
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var login = new URL(loginUrl(), window.location.href).pathname;
    if (xhr && xhr.responseURL && new URL(xhr.responseURL).pathname === login &&
        window.location.pathname !== login) {
      toLogin();
    } else if (event.detail.successful) {
      hide();
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-request-error-dismiss]")) {
      hide();
    }
  });
})();
