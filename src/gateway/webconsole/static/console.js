// The console's only script (same origin; the Content-Security-Policy allows no other).
// The overview's #events list follows the ledger through the cookie-authenticated feed /console/events.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var list = document.getElementById("events");
  if (!list || !window.EventSource) { return; }
  // resume after the last entry the page was rendered with: nothing between the render and the stream is lost
  var feed = (list.getAttribute("data-feed") || "/console/events") + "?after=" +
    encodeURIComponent(list.getAttribute("data-last-seq") || "");
  var source = new EventSource(feed);
  // the console ended the stream (signed out, session expired): stop reconnecting
  source.addEventListener("console.closed", function () { source.close(); });
  var limit = 50;
  source.onmessage = function (message) {
    var entry;
    try { entry = JSON.parse(message.data); } catch (e) { return; }
    var item = document.createElement("li");
    item.className = "fresh";
    item.setAttribute("data-seq", String(entry.seq));
    item.setAttribute("data-type", String(entry.type));
    var text = "#" + entry.seq + " · " + (entry.recorded_at_vn || entry.recorded_at || "") + " · " + entry.type;
    if (entry.document_id) { text += " · " + entry.document_id; }
    if (entry.actor) { text += " · " + entry.actor; }
    item.textContent = text;
    list.setAttribute("data-last-seq", String(entry.seq));
    list.insertBefore(item, list.firstChild);
    while (list.children.length > limit) { list.removeChild(list.lastChild); }
  };
});
