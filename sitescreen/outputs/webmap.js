/* The interactive site map of a sitescreen report (see sitescreen/outputs/webmap.py).
 * Reads its data from <script type="application/json"> blocks; user text (site names and
 * ids) is only ever set with textContent. No tiles, no requests. */
(function () {
  "use strict";
  var root = document.getElementById("sitescreen-map");
  if (!root || !window.L) { return; }
  var data = JSON.parse(document.getElementById("sitescreen-map-data").textContent);
  var world = JSON.parse(document.getElementById("sitescreen-map-countries").textContent);
  var nCombos = data.combos.length;
  var hazardIndex = {};
  data.hazards.forEach(function (h, i) { hazardIndex[h.id] = i; });

  var map = L.map(root.querySelector(".imap-canvas"), {
    minZoom: 1, maxZoom: 14, zoomSnap: 0.5, worldCopyJump: false
  });
  // The view first: layers added to a map without one cannot be drawn.
  var bounds = L.latLngBounds(data.sites.map(function (s) { return [s.lat, s.lon]; }));
  map.fitBounds(bounds.pad(0.08), {maxZoom: 8});
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(data.attribution.replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c];
  }));
  L.geoJSON(world, {
    interactive: false,
    style: {color: "#9e9e9e", weight: 0.7, fillColor: "#f4f4f1", fillOpacity: 1}
  }).addTo(map);

  var select = {};
  ["hazard", "scenario", "year"].forEach(function (name) {
    select[name] = root.querySelector("select[name=" + name + "]");
  });

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (cls) { node.className = cls; }
    return node;
  }

  function comboIndex() {
    var s = select.scenario.value, y = Number(select.year.value);
    for (var i = 0; i < nCombos; i++) {
      if (data.combos[i].scenario === s && data.combos[i].year === y) { return i; }
    }
    return -1;
  }

  function cell(site, h, c) {
    var k = h * nCombos + c;
    var lv = site.lv.charAt(k), lo = (site.lo || site.lv).charAt(k),
        hi = (site.hi || site.lv).charAt(k);
    return {level: lv, text: lv === "-" ? "" : (lv === "0" ? "-" :
            (lo === hi ? lv : lv + " (" + lo + "-" + hi + ")"))};
  }

  function popup(site) {
    var box = el("div", null, "imap-pop");
    box.appendChild(el("h4", site.name || site.id));
    box.appendChild(el("p", "Site " + site.id + (site.precision ? "; located at " +
                       site.precision + " precision" : "")));
    var table = el("table"), head = el("tr");
    var h = hazardIndex[select.hazard.value], c = comboIndex();
    head.appendChild(el("th", "Hazard"));
    data.combos.forEach(function (combo, j) {
      var th = el("th", combo.short, j === c ? "sel" : "");
      th.title = combo.title;
      head.appendChild(th);
    });
    table.appendChild(head);
    data.hazards.forEach(function (hazard, i) {
      var tr = el("tr", null, i === h ? "selrow" : "");
      tr.appendChild(el("td", hazard.label));
      for (var j = 0; j < nCombos; j++) {
        var v = cell(site, i, j);
        var td = el("td", v.text, "lv l" + (v.level === "-" ? "0" : v.level) +
                    (i === h && j === c ? " sel" : ""));
        td.title = v.level === "-" ? "not screened" : (data.levels[v.level] || "");
        tr.appendChild(td);
      }
      table.appendChild(tr);
    });
    box.appendChild(table);
    return box;
  }

  var markers = data.sites.map(function (site) {
    var marker = L.circleMarker([site.lat, site.lon], {
      radius: 7, weight: 1, color: "#333333", fillOpacity: 0.95, className: "imap-site"
    });
    marker.bindPopup(function () { return popup(site); }, {maxWidth: 460});
    marker.bindTooltip(el("span", site.name || site.id), {direction: "top"});
    marker.site = site;
    marker.addTo(map);
    return marker;
  });

  function restyle() {
    var h = hazardIndex[select.hazard.value], c = comboIndex(), counts = {};
    var order = markers.map(function (m) {
      var lv = c < 0 ? "-" : m.site.lv.charAt(h * nCombos + c);
      counts[lv] = (counts[lv] || 0) + 1;
      var filled = lv !== "-" && lv !== "0";
      m.setStyle({
        fillColor: filled ? data.colours[lv] : "#ffffff",
        fillOpacity: filled ? 0.95 : 0.0,
        color: filled ? "#333333" : "#7a7a7a", weight: filled ? 1 : 1.5
      });
      m.getElement().setAttribute("data-level", lv);
      return [filled ? Number(lv) : 0, m];
    });
    // Worst levels on top where sites overlap.
    order.sort(function (a, b) { return a[0] - b[0]; });
    order.forEach(function (pair) { pair[1].bringToFront(); });
    root.querySelectorAll(".imap-legend b[data-level]").forEach(function (b) {
      b.textContent = String(counts[b.getAttribute("data-level")] || 0);
    });
    if (map.closePopup) { map.closePopup(); }
  }

  Object.keys(select).forEach(function (name) {
    select[name].addEventListener("change", restyle);
  });
  restyle();
  window.sitescreenMap = {map: map, markers: markers, restyle: restyle};
}());
