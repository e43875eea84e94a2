/* Live values for the metrics dashboard in the Django admin.
 *
 * When "Auto-refresh" is on, polls the page's JSON view (data-pytheus-data-url: the
 * admin's data/ URL with the page's own query string) and writes the new values into
 * the cells in place, without a reload. Values, help texts and label values are user
 * data: they are only ever set with textContent or setAttribute, never as HTML.
 * The choice is kept in localStorage, so it survives navigation between pages.
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
    const errorNote = root.querySelector("[data-pytheus-error]");
    const STORAGE_KEY = "django_pytheus.autorefresh";
    let timer = null;
    let inFlight = false;

    function storage(key, value) {
        try {
            if (value === undefined) {
                return window.localStorage.getItem(key);
            }
            window.localStorage.setItem(key, value);
        } catch (e) {
            // Storage may be disabled (private windows); the toggle then lasts one page.
        }
        return null;
    }

    function showTime(date) {
        updated.setAttribute("datetime", date.toISOString());
        updated.textContent = date.toLocaleTimeString();
    }

    function showError(message) {
        errorNote.textContent = message;
        errorNote.hidden = !message;
        updated.parentElement.classList.toggle("pytheus-stale", Boolean(message));
    }

    function flash(element) {
        element.classList.remove("pytheus-changed");
        // Reading offsetWidth restarts the animation on an element that just had it.
        void element.offsetWidth;
        element.classList.add("pytheus-changed");
    }

    function setText(element, text) {
        if (element.textContent !== text) {
            element.textContent = text;
            flash(element);
        }
    }

    function updateChart(svg, bars) {
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
    }

    function updateFamily(article, family) {
        const count = article.querySelector("[data-pytheus-count]");
        if (count) {
            setText(count, String(family.series));
        }
        const shown = new Set();
        article.querySelectorAll("[data-pytheus-series]").forEach(function (row) {
            shown.add(row.getAttribute("data-pytheus-series"));
        });
        // Rows are not added in place (the page's order and paging would shift under the
        // reader); a note says that a reload shows them.
        const notice = article.querySelector("[data-pytheus-new]");
        if (notice && Object.keys(family.rows).some(function (key) { return !shown.has(key); })) {
            notice.hidden = false;
        }
        article.querySelectorAll("[data-pytheus-series]").forEach(function (row) {
            const values = family.rows[row.getAttribute("data-pytheus-series")];
            if (!values) {
                return;
            }
            row.querySelectorAll("[data-pytheus-cell]").forEach(function (cell) {
                const text = values[cell.getAttribute("data-pytheus-cell")];
                if (typeof text === "string") {
                    setText(cell, text);
                }
            });
            const chart = row.querySelector("[data-pytheus-chart]");
            if (chart && Array.isArray(values.bars)) {
                updateChart(chart, values.bars);
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
        const families = payload.families || {};
        root.querySelectorAll("[data-pytheus-family]").forEach(function (article) {
            const family = families[article.getAttribute("data-pytheus-family")];
            if (family) {
                updateFamily(article, family);
            }
        });
        showError(payload.error || "");
        showTime(new Date());
    }

    function pollUrl() {
        // Only the families on screen are read again (see MetricAdmin.data_view).
        const names = Array.from(root.querySelectorAll("[data-pytheus-family]"), function (a) {
            return "name=" + encodeURIComponent(a.getAttribute("data-pytheus-family"));
        });
        if (!names.length) {
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
                showError("Your session has ended: reload the page to log in again.");
                return;
            }
            if (response.status === 403) {
                stop();
                showError("You may no longer view the metrics.");
                return;
            }
            return response.json().then(apply);
        }).catch(function (error) {
            showError("Could not refresh the values: " + error.message);
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
        storage(STORAGE_KEY, JSON.stringify({on: toggle.checked, every: interval.value}));
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

    if (updated.getAttribute("datetime")) {
        showTime(new Date(updated.getAttribute("datetime")));
    }
    let saved = null;
    try {
        saved = JSON.parse(storage(STORAGE_KEY) || "null");
    } catch (e) {
        saved = null;
    }
    if (saved && saved.every) {
        interval.value = saved.every;
    }
    if (saved && saved.on) {
        toggle.checked = true;
        schedule();
    }
})();
