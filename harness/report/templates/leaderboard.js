// The spikebench leaderboard's tables: each dataset table's rows come as data (a script element of type
// application/gzip beside the table) and are shown a page at a time, so that a page of thousands of runs stays small
// and quick. Filters, sorting and the column chooser apply to every row, not only those on the page shown; a row's
// provenance is built when it is first opened. Each row and its provenance row share one <tbody>.
(function () {
  "use strict";

  function compare(a, b, numeric) {
    if (a === b) { return 0; }
    if (a === "") { return 1; }
    if (b === "") { return -1; }
    if (numeric) { return parseFloat(a) - parseFloat(b); }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function cellText(cell) { return cell[0]; }
  function cellSort(cell) { return cell.length > 1 ? cell[1] : cell[0]; }

  function Board(table, data, pager, form) {
    this.table = table;
    this.data = data;
    this.pager = pager;
    this.form = form;
    this.headers = Array.prototype.slice.call(table.tHead.querySelectorAll("th[data-key]"));
    this.keys = this.headers.map(function (th) { return th.getAttribute("data-key"); });
    this.byId = {};
    this.rows = data.rows.map(function (row, position) {
      return { id: row[0], family: row[1], T: String(row[2]), params: row[3], cells: row[4], provenance: row[5],
               source: row[6], position: position };
    });
    var byId = this.byId;
    this.rows.forEach(function (row) { byId[row.id] = row; });
    this.shown = this.rows.slice();
    this.page = 0;
    this.size = parseInt(pager.getAttribute("data-size"), 10);
    this.points = {};
    var section = table.closest("section");
    var self = this;
    section.querySelectorAll(".pt.measured[data-row]").forEach(function (point) {
      var id = point.getAttribute("data-row");
      (self.points[id] = self.points[id] || []).push(point);
    });
  }

  Board.prototype.pages = function () { return Math.max(1, Math.ceil(this.shown.length / this.size)); };

  Board.prototype.render = function () {
    var table = this.table;
    while (table.tBodies.length) { table.removeChild(table.tBodies[0]); }
    this.page = Math.min(this.page, this.pages() - 1);
    var start = this.page * this.size;
    var fragment = document.createDocumentFragment();
    for (var i = start; i < Math.min(start + this.size, this.shown.length); i++) {
      fragment.appendChild(this.group(this.shown[i]));
    }
    table.appendChild(fragment);
    this.pager.querySelector(".page").textContent = "page " + (this.page + 1) + " of " + this.pages();
    this.pager.querySelector(".prev").disabled = this.page === 0;
    this.pager.querySelector(".next").disabled = this.page >= this.pages() - 1;
    this.form.querySelector(".count").textContent = this.shown.length + " of " + this.rows.length + " rows";
  };

  Board.prototype.group = function (row) {
    var group = element("tbody");
    group.id = row.id;
    group.setAttribute("data-family", row.family);
    group.setAttribute("data-t", row.T);
    group.setAttribute("data-source", row.source);
    group.setAttribute("data-params", row.params === null ? "" : String(row.params));
    var main = element("tr", "main");
    var first = element("td");
    var toggle = element("button", "toggle", "▸");
    toggle.type = "button";
    toggle.title = "Show provenance";
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-controls", row.id + "-prov");
    first.appendChild(toggle);
    main.appendChild(first);
    var keys = this.keys, headers = this.headers;
    row.cells.forEach(function (cell, index) {
      var td = element("td", "col-" + keys[index]);
      if (cell.length > 2) {  // a badge: [text, sort, state, hover title]
        var badge = td.appendChild(element("span", "badge badge-" + cell[2], cellText(cell)));
        badge.title = cell[3];
      } else {
        td.textContent = cellText(cell);
      }
      td.setAttribute("data-sort", cellSort(cell));
      td.hidden = headers[index].hidden;  // as the column chooser left the column
      main.appendChild(td);
    });
    group.appendChild(main);
    return group;
  };

  Board.prototype.provenanceRow = function (group) {
    var row = this.byId[group.id];
    var shared = this.data.shared;
    var p = row.provenance;
    var tr = element("tr", "prov");
    tr.id = row.id + "-prov";
    var td = element("td");
    td.colSpan = this.keys.length + 1;
    var facts = element("dl", "facts");
    [["Suites", p[0]], ["Source", p[5]], ["Code fingerprint", p[6]], ["Git commits", p[1]]].forEach(function (fact) {
      facts.appendChild(element("dt", null, fact[0]));
      facts.appendChild(element("dd", null, fact[1]));
    });
    td.appendChild(facts);
    td.appendChild(element("h3", null, "Runs, one per seed"));
    var runs = p[2].map(function (r) {
      return [r[0], r[1], r[2] + (r[3] ? ": " + r[3] : ""), r[9]].concat(r[4], [r[5], r[6]]);
    });
    var headers = ["seed", "run id", "state", "verification"].concat(this.data.per_run_columns,
                                                                      ["started", "MLflow run"]);
    td.appendChild(grid(headers, runs));
    td.appendChild(element("h3", null, "Reproduce"));
    p[2].forEach(function (r) {
      var pre = element("pre");
      pre.appendChild(element("code", null, r[7]));
      td.appendChild(pre);
    });
    var columns = element("div", "columns");
    var left = element("div");
    left.appendChild(element("h3", null, "Configuration"));
    left.appendChild(keyValues(shared[p[3]]));
    if (shared[p[4]].length) {
      left.appendChild(element("h3", null, "Resolved recipe"));
      left.appendChild(keyValues(shared[p[4]]));
    }
    var right = element("div");
    right.appendChild(element("h3", null, "Environment"));
    right.appendChild(grid(["seed"].concat(this.data.environment),
                           p[2].map(function (r) { return [r[0]].concat(shared[r[8]]); })));
    columns.appendChild(left);
    columns.appendChild(right);
    td.appendChild(columns);
    tr.appendChild(td);
    return tr;
  };

  function grid(headers, rows) {
    var table = element("table", "runs");
    var head = element("tr");
    headers.forEach(function (h) { head.appendChild(element("th", null, h)); });
    table.appendChild(element("thead")).appendChild(head);
    var body = table.appendChild(element("tbody"));
    rows.forEach(function (cells) {
      var tr = body.appendChild(element("tr"));
      cells.forEach(function (c) { tr.appendChild(element("td", null, c)); });
    });
    return table;
  }

  function keyValues(pairs) {
    var table = element("table", "kv");
    pairs.forEach(function (pair) {
      var tr = table.appendChild(element("tr"));
      tr.appendChild(element("th", null, pair[0]));
      tr.appendChild(element("td", null, pair[1]));
    });
    return table;
  }

  Board.prototype.toggle = function (button) {
    var group = button.closest("tbody");
    var row = document.getElementById(button.getAttribute("aria-controls"));
    if (!row) {
      row = group.appendChild(this.provenanceRow(group));
      row.hidden = true;
    }
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    row.hidden = !open;
  };

  Board.prototype.sort = function (header) {
    var index = this.keys.indexOf(header.getAttribute("data-key"));
    var numeric = header.getAttribute("data-type") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    this.table.tHead.querySelectorAll("th[aria-sort]").forEach(function (cell) {
      cell.setAttribute("aria-sort", "none");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var order = function (a, b) {
      var ka = cellSort(a.cells[index]), kb = cellSort(b.cells[index]);
      var result = (ka === "" || kb === "") ? compare(ka, kb, numeric)
        : (ascending ? compare(ka, kb, numeric) : compare(kb, ka, numeric));
      return result || a.position - b.position;
    };
    this.rows.sort(order);
    this.shown.sort(order);
    this.page = 0;
    this.render();
  };

  function number(input) {
    var value = input.value.trim();
    return value === "" ? null : parseFloat(value);
  }

  Board.prototype.filter = function () {
    var form = this.form;
    var family = form.elements.family.value;
    var steps = form.elements.T.value;
    var source = form.elements.source ? form.elements.source.value : "";
    var low = number(form.elements.pmin);
    var high = number(form.elements.pmax);
    var points = this.points;
    this.shown = this.rows.filter(function (row) {
      var visible = (source === "" || row.source === source) &&
        (family === "" || row.family === family) && (steps === "" || row.T === steps) &&
        (low === null || (row.params !== null && row.params >= low)) &&
        (high === null || (row.params !== null && row.params <= high));
      (points[row.id] || []).forEach(function (point) {
        if (visible) { point.removeAttribute("visibility"); } else { point.setAttribute("visibility", "hidden"); }
      });
      return visible;
    });
    this.page = 0;
    this.render();
  };

  // The rows come gzipped in base64 (harness.report.leaderboard.packed); the browser's DecompressionStream unpacks
  // them. The page is ready (body[data-ready]) once every table shows its first page.
  function unpack(text) {
    var bytes = Uint8Array.from(atob(text.trim()), function (c) { return c.charCodeAt(0); });
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  function connect(holder, data) {
    var id = holder.getAttribute("data-table");
    var table = document.getElementById(id);
    var pager = document.querySelector('nav.pager[data-table="' + id + '"]');
    var form = document.querySelector('form.filters[data-table="' + id + '"]');
    var board = new Board(table, data, pager, form);
    table.tHead.addEventListener("click", function (event) {
      var button = event.target.closest("button.sort");
      if (button) { board.sort(button.closest("th")); }
    });
    table.addEventListener("click", function (event) {
      var button = event.target.closest("button.toggle");
      if (button) { board.toggle(button); }
    });
    pager.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) { return; }
      board.page = Math.max(0, board.page + (button.classList.contains("next") ? 1 : -1));
      board.render();
    });
    pager.querySelector("select[name=size]").addEventListener("change", function (event) {
      board.size = parseInt(event.target.value, 10);
      board.page = 0;
      board.render();
    });
    form.addEventListener("input", function () { board.filter(); });
    form.addEventListener("change", function () { board.filter(); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    board.render();
  }

  Promise.all(Array.prototype.map.call(document.querySelectorAll("script.board-data"), function (holder) {
    return unpack(holder.textContent).then(function (data) { connect(holder, data); });
  })).then(function () { document.body.setAttribute("data-ready", "true"); });

  // The column chooser: a column's header and cells are hidden or shown in every dataset table at once; the pages
  // shown later follow the header.
  function showColumn(key, visible) {
    document.querySelectorAll("table.board .col-" + key).forEach(function (cell) { cell.hidden = !visible; });
  }

  document.querySelectorAll("form.columns-form").forEach(function (form) {
    form.addEventListener("change", function (event) {
      var box = event.target;
      if (box.type === "checkbox") { showColumn(box.name, box.checked); }
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
  });
}());
