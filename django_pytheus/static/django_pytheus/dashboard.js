/* Live values for the metrics dashboard in the Django admin.
 *
 * With "Auto-refresh" on (the default; the choice is kept in localStorage), polls the
 * page's JSON view (data-pytheus-data-url: the admin's data/ URL with the page's own
 * query string, plus the names of the families on screen) and puts the new text in
 * place: the overview's figures and lists, each table's rows in their new order, the
 * backend's status. Every number arrives formatted: the server computes and formats
 * them all (django_pytheus/dashboard.py), this script only places text. Values, help
 * texts and label values are user data: set with textContent or setAttribute, never
 * as HTML.
 *
 * When a poll fails (Redis down, the network, the server), the values on screen stay,
 * marked stale with their age, and the error says what failed since when.
 */
"use strict";
(function () {
    const root = document.querySelector("[data-pytheus-data-url]");
    if (!root) {
        return;
    }
    const url = root.getAttribute("data-pytheus-data-url");
    const toggle = document.getElementById("pytheus-autorefresh");
    const interval = document.getElementById("pytheus-interval");
    const refreshButton = document.getElementById("pytheus-refresh");
    const updated = document.getElementById("pytheus-updated");
    const age = root.querySelector("[data-pytheus-age]");
    const errorNote = root.querySelector("[data-pytheus-error]");
    const problem = root.querySelector("[data-pytheus-problem]");
    const staleNote = root.querySelector("[data-pytheus-stale-note]");
    const STORAGE_KEY = "django_pytheus.autorefresh";
    const FOCUS_KEY = "django_pytheus.sortfocus";
    const FLASHING = new Set(["total", "value", "state"]);
    let timer = null;
    let inFlight = false;
    let readAt = updated.getAttribute("datetime") ? new Date(updated.getAttribute("datetime")) : null;

    function storage(area, key, value) {
        try {
            if (value === undefined) {
                return area.getItem(key);
            }
            area.setItem(key, value);
        } catch (e) {
            // Storage may be disabled (private windows); the choice then lasts one page.
        }
        return null;
    }

    // ------------------------------------------------------------------ time and staleness

    function ageText(seconds) {
        if (seconds < 1) {
            return "just now";
        }
        if (seconds < 120) {
            return Math.round(seconds) + " s ago";
        }
        if (seconds < 7200) {
            return Math.round(seconds / 60) + " min ago";
        }
        return Math.round(seconds / 3600) + " h ago";
    }

    function showAge() {
        if (readAt && age) {
            age.textContent = "(" + ageText((Date.now() - readAt.getTime()) / 1000) + ")";
        }
    }

    // Times in UTC, as the server writes them ("failing since 03:12:04 UTC").
    function clock(date) {
        return date.toISOString().slice(11, 19) + " UTC";
    }

    function showRead(date) {
        readAt = date;
        updated.setAttribute("datetime", date.toISOString());
        updated.textContent = clock(date);
        showAge();
    }

    function setStale(message, explanation) {
        root.classList.toggle("pytheus-is-stale", Boolean(message));
        problem.textContent = message || "";
        staleNote.textContent = explanation || "";
        errorNote.hidden = !message;
    }

    function staleExplanation() {
        if (!readAt) {
            return "";
        }
        return "The values below were read at " + clock(readAt) + " (" +
            ageText((Date.now() - readAt.getTime()) / 1000) + ") and are marked stale.";
    }

    // ------------------------------------------------------------------ placing text

    function flash(element) {
        element.classList.remove("pytheus-changed");
        // Reading offsetWidth restarts the animation on an element that just had it.
        void element.offsetWidth;
        element.classList.add("pytheus-changed");
    }

    function setText(element, text, quiet) {
        if (element.textContent !== text) {
            element.textContent = text;
            if (!quiet) {
                flash(element);
            }
        }
    }

    function setTitle(element, title) {
        if (title) {
            element.setAttribute("title", title);
        } else {
            element.removeAttribute("title");
        }
    }

    function updateChart(svg, bars, summary) {
        const groups = svg.querySelectorAll("g");
        bars.forEach(function (bar, i) {
            const group = groups[i];
            if (!group) {
                return;
            }
            const rect = group.querySelector(".pytheus-bar");
            rect.setAttribute("y", String(bar[0]));
            rect.setAttribute("height", String(bar[1]));
            group.querySelector("title").textContent = bar[2];
        });
        if (summary) {
            svg.setAttribute("aria-label", summary);
        }
    }

    // With several worker processes, a poll may reach one that has no earlier reading
    // yet: it answers totals since start. Rates already on screen are kept then (its
    // totals still count), rather than flipping between a window and since start.
    function loses(element, window) {
        return Boolean(element) && window === "since start" &&
            element.textContent.indexOf("last ") === 0;
    }

    function fillRow(row, values, fresh, totalsOnly) {
        if (Array.isArray(values.labels)) {
            row.querySelectorAll("[data-pytheus-label]").forEach(function (cell, i) {
                const pair = values.labels[i] || ["", ""];
                cell.textContent = pair[0] || "(empty)";
                cell.classList.toggle("quiet", !pair[0]);
                setTitle(cell, pair[1]);
            });
        }
        row.querySelectorAll("[data-pytheus-cell]").forEach(function (cell) {
            const id = cell.getAttribute("data-pytheus-cell");
            const value = (values.cells || {})[id];
            if (totalsOnly && !FLASHING.has(id)) {
                return;
            }
            if (Array.isArray(value)) {
                // Totals and values flash when they change; rates and percentiles
                // move at every refresh, and flashing them all would only be noise.
                setText(cell, value[0], fresh || !FLASHING.has(id));
                setTitle(cell, value[1]);
            }
        });
        const chart = row.querySelector("[data-pytheus-chart]");
        if (chart && Array.isArray(values.bars) && !totalsOnly) {
            updateChart(chart, values.bars, values.chart);
        }
    }

    function updateFamily(article, family) {
        const count = article.querySelector("[data-pytheus-count]");
        if (count) {
            setText(count, String(family.series));
        }
        const badge = article.querySelector("[data-pytheus-window]");
        const totalsOnly = loses(badge, family.window);
        if (badge && family.window && !totalsOnly) {
            setText(badge, family.window, true);
            setTitle(badge, family.window_title);
            badge.setAttribute("data-pytheus-window-bounds", (family.window_bounds || []).join(" "));
        }
        const single = article.querySelector(".pytheus-single");
        if (single) {
            const values = family.rows[single.getAttribute("data-pytheus-series")];
            if (values) {
                fillRow(single, values, false, totalsOnly);
            }
            return;
        }
        const body = article.querySelector("tbody");
        if (!body) {
            if (Object.keys(family.rows).length) {
                article.querySelector("[data-pytheus-new]").hidden = false;
            }
            return;
        }
        // The rows the server shows now, in its order: rows still there move, new ones
        // are copies of a row with the same columns, filled in.
        const existing = new Map();
        body.querySelectorAll("tr[data-pytheus-series]").forEach(function (row) {
            existing.set(row.getAttribute("data-pytheus-series"), row);
        });
        if (totalsOnly) {
            // Not reordered either: the order is by rate.
            body.querySelectorAll("tr[data-pytheus-series]").forEach(function (row) {
                const values = family.rows[row.getAttribute("data-pytheus-series")];
                if (values) {
                    fillRow(row, values, false, true);
                }
            });
            return;
        }
        const model = body.querySelector("tr[data-pytheus-series]");
        const rows = [];
        (family.order || []).forEach(function (key) {
            let row = existing.get(key);
            const fresh = !row;
            if (!row) {
                row = model.cloneNode(true);
                row.setAttribute("data-pytheus-series", key);
            }
            existing.delete(key);
            fillRow(row, family.rows[key], fresh);
            rows.push(row);
        });
        existing.forEach(function (row) {
            row.remove();
        });
        rows.forEach(function (row) {
            body.appendChild(row);
        });
    }

    function updateList(list, items) {
        const empty = list.getAttribute("data-pytheus-empty") || "";
        const entries = items.length ? items : [null];
        const made = entries.map(function (item) {
            const li = document.createElement("li");
            if (!item) {
                li.className = "pytheus-none";
                li.textContent = empty;
                return li;
            }
            // [name, text, title, extra, href, raw label]
            const link = document.createElement("a");
            link.href = item[4];
            link.textContent = item[0];
            if (item[5] && item[5] !== item[0]) {
                link.title = item[5];
            }
            const value = document.createElement("span");
            value.className = "pytheus-top-value";
            value.textContent = item[1];
            setTitle(value, item[2]);
            const extra = document.createElement("span");
            extra.className = "pytheus-top-extra";
            extra.textContent = item[3];
            li.append(link, " ", value, " ", extra);
            return li;
        });
        list.replaceChildren.apply(list, made);
    }

    function updateOverview(overview) {
        const section = root.querySelector("[data-pytheus-overview]");
        if (!section || !overview) {
            return;
        }
        const windowBadge = section.querySelector("[data-pytheus-overview-window]");
        if (loses(windowBadge, overview.window)) {
            return;  // its figures are rates: kept until a poll brings rates again
        }
        if (windowBadge) {
            setText(windowBadge, overview.window, true);
        }
        Object.keys(overview.figures || {}).forEach(function (id) {
            const figure = overview.figures[id];
            const card = section.querySelector('[data-pytheus-figure="' + CSS.escape(id) + '"]');
            if (!card) {
                return;
            }
            card.classList.toggle("pytheus-bad", Boolean(figure.bad));
            card.classList.toggle("pytheus-figure-stale", Boolean(figure.stale));
            const staleTag = card.querySelector("[data-pytheus-figure-stale]");
            if (staleTag) {
                staleTag.textContent = figure.stale || "";
                staleTag.hidden = !figure.stale;
            }
            const text = card.querySelector("[data-pytheus-text]");
            setText(text, figure.text, true);  // rates move at every refresh: no flash
            setTitle(text, figure.title);
            setText(card.querySelector("[data-pytheus-detail]"), figure.detail, true);
            const spark = card.querySelector("[data-pytheus-spark]");
            if (spark) {
                // The attribute, not the property: SVG elements have no .hidden.
                spark.toggleAttribute("hidden", !figure.spark);
                if (figure.spark) {
                    spark.querySelector("polyline").setAttribute("points", figure.spark[0]);
                    spark.setAttribute("aria-label", figure.spark[1]);
                    spark.querySelector("title").textContent = figure.spark[1];
                }
            }
        });
        Object.keys(overview.lists || {}).forEach(function (id) {
            const list = section.querySelector('[data-pytheus-list="' + CSS.escape(id) + '"]');
            const badge = section.querySelector(
                '[data-pytheus-list-window="' + CSS.escape(id) + '"]');
            const over = (overview.windows || {})[id];
            if (loses(badge, over)) {
                return;
            }
            if (badge && over) {
                setText(badge, over, true);
            }
            if (list) {
                updateList(list, overview.lists[id]);
            }
        });
    }

    function updateStatus(status) {
        root.querySelectorAll("[data-pytheus-status]").forEach(function (element) {
            const key = element.getAttribute("data-pytheus-status");
            if (typeof status[key] === "string") {
                element.textContent = status[key];
            }
            if (key === "health") {
                element.setAttribute("data-healthy", status.healthy ? "true" : "false");
            }
        });
    }

    function apply(payload) {
        updateStatus(payload.status || {});
        if (payload.error) {
            // The server could not read the metrics: what is on screen stays, marked.
            setStale((payload.status && payload.status.problem) || payload.error,
                staleExplanation());
            return;
        }
        updateOverview(payload.overview);
        const families = payload.families || {};
        root.querySelectorAll("[data-pytheus-family]").forEach(function (article) {
            const family = families[article.getAttribute("data-pytheus-family")];
            if (family) {
                updateFamily(article, family);
                article.classList.remove("pytheus-family-stale");
            }
        });
        setStale("", "");
        showRead(payload.read_at ? new Date(payload.read_at) : new Date());
    }

    // ------------------------------------------------------------------ polling

    function pollUrl() {
        // Only the families on screen are read again (see MetricAdmin.data_view).
        const names = Array.from(root.querySelectorAll("[data-pytheus-family]"), function (a) {
            return "name=" + encodeURIComponent(a.getAttribute("data-pytheus-family"));
        });
        if (!names.length || url.indexOf("family=") !== -1) {
            return url;
        }
        return url + (url.indexOf("?") === -1 ? "?" : "&") + names.join("&");
    }

    function refresh() {
        if (inFlight) {
            return Promise.resolve();
        }
        inFlight = true;
        return fetch(pollUrl(), {
            credentials: "same-origin",
            headers: {Accept: "application/json"},
            cache: "no-store",
        }).then(function (response) {
            const type = response.headers.get("Content-Type") || "";
            if (response.redirected || !type.startsWith("application/json")) {
                // The session ended: admin_view answered with the login page.
                stop();
                setStale("Your session has ended: reload the page to log in again.", "");
                return;
            }
            if (response.status === 403) {
                stop();
                setStale("You may no longer view the metrics.", "");
                return;
            }
            return response.json().then(apply);
        }).catch(function (error) {
            setStale("Could not reach the server to refresh the values: " + error.message + ".",
                staleExplanation());
        }).finally(function () {
            inFlight = false;
        });
    }

    function schedule() {
        window.clearTimeout(timer);
        timer = null;
        if (!toggle.checked) {
            return;
        }
        const seconds = Number(interval.value) || 5;
        timer = window.setTimeout(function () {
            // A hidden tab does not poll; it catches up when shown again.
            const work = document.hidden ? Promise.resolve() : refresh();
            work.then(schedule);
        }, seconds * 1000);
    }

    function stop() {
        toggle.checked = false;
        window.clearTimeout(timer);
        timer = null;
    }

    function save() {
        storage(window.localStorage, STORAGE_KEY,
            JSON.stringify({on: toggle.checked, every: interval.value}));
    }

    toggle.addEventListener("change", function () {
        save();
        if (toggle.checked) {
            refresh().then(schedule);
        } else {
            stop();
        }
    });
    interval.addEventListener("change", function () {
        save();
        schedule();
    });
    refreshButton.addEventListener("click", function () {
        refresh();
    });
    document.addEventListener("visibilitychange", function () {
        if (!document.hidden && toggle.checked) {
            refresh().then(schedule);
        }
    });

    // ------------------------------------------------------------------ sorting

    // A column sorts by following its link (a reload: the server sorts all the series,
    // not only those on screen); the keyboard focus comes back to that header after it.
    root.addEventListener("click", function (event) {
        const link = event.target.closest("a[data-pytheus-sort]");
        if (!link) {
            return;
        }
        const article = link.closest("[data-pytheus-family]");
        storage(window.sessionStorage, FOCUS_KEY, JSON.stringify({
            family: article ? article.getAttribute("data-pytheus-family") : "",
            column: link.getAttribute("data-pytheus-sort"),
        }));
    });
    let focus = null;
    try {
        focus = JSON.parse(storage(window.sessionStorage, FOCUS_KEY) || "null");
    } catch (e) {
        focus = null;
    }
    if (focus) {
        storage(window.sessionStorage, FOCUS_KEY, "");
        const article = root.querySelector(
            '[data-pytheus-family="' + CSS.escape(focus.family || "") + '"]');
        const link = article && article.querySelector(
            'a[data-pytheus-sort="' + CSS.escape(focus.column || "") + '"]');
        if (link) {
            // After the load and the scroll to the family's anchor, which would take
            // a focus given earlier away again.
            window.addEventListener("load", function () {
                window.setTimeout(function () {
                    link.focus();
                }, 0);
            });
        }
    }

    // The backend's figure opens the panel with its details.
    const backendFigure = root.querySelector("[data-pytheus-backend-figure]");
    const backendPanel = document.getElementById("pytheus-backend");
    if (backendFigure && backendPanel) {
        backendFigure.addEventListener("click", function () {
            backendPanel.open = true;
        });
    }

    // ------------------------------------------------------------------ phones

    // On a phone a table first shows the columns that answer the question (labels,
    // rate, p99 or value, the sorted column); a button beside it shows the others.
    root.querySelectorAll("[data-pytheus-table]").forEach(function (wrap) {
        if (!wrap.querySelector(".pytheus-extra")) {
            return;
        }
        wrap.classList.add("pytheus-compact");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button pytheus-columns-toggle";
        button.textContent = "Show all columns";
        button.setAttribute("aria-expanded", "false");
        button.addEventListener("click", function () {
            const compact = wrap.classList.toggle("pytheus-compact");
            button.textContent = compact ? "Show all columns" : "Show fewer columns";
            button.setAttribute("aria-expanded", compact ? "false" : "true");
        });
        wrap.after(button);
    });

    // ------------------------------------------------------------------ start

    if (readAt) {
        showRead(readAt);
    }
    window.setInterval(function () {
        showAge();
        if (root.classList.contains("pytheus-is-stale") && readAt) {
            staleNote.textContent = staleExplanation();
        }
    }, 1000);
    let saved = null;
    try {
        saved = JSON.parse(storage(window.localStorage, STORAGE_KEY) || "null");
    } catch (e) {
        saved = null;
    }
    if (saved && saved.every) {
        interval.value = saved.every;
    }
    // On by default: the page is for watching what happens now.
    toggle.checked = !saved || Boolean(saved.on);
    schedule();
})();
