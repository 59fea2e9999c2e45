// Reloads a page that asks for it (the overview), unless the tab is hidden.
(function () {
  var s = document.body.getAttribute("data-refresh");
  if (!s) { return; }
  setInterval(function () {
    if (!document.hidden) { location.reload(); }
  }, Number(s) * 1000);
})();
