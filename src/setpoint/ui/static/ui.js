// The dashboard's one script: pages marked data-refresh on <main> are fetched again
// every N seconds (?fragment=main) and swapped in when they changed, except while the
// tab is hidden or the person is typing in a form on the page. Everything works
// without it; it only spares a reload.
"use strict";
(function () {
  var main = document.getElementById("main");
  if (!main || !main.dataset.refresh) { return; }
  var seconds = Math.max(5, parseInt(main.dataset.refresh, 10) || 15);
  var last = main.innerHTML;
  function busy() {  // typing, or something typed and not sent yet
    var active = document.activeElement;
    if (active && active.form && main.contains(active)) { return true; }
    var fields = main.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (field.type !== "hidden" && field.value !== field.defaultValue) { return true; }
    }
    return false;
  }
  function refresh() {
    if (document.hidden || busy()) { return; }
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "main");
    url.searchParams.delete("notice");
    url.searchParams.delete("sig");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (text) {
        if (text === null || text === last || busy()) { return; }
        last = text;
        main.innerHTML = text;
        var stamp = document.querySelector("[data-updated]");
        if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function () { /* the server is restarting: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
