import Backup
import Foundation

/// Renders the dashboard at `GET /`: one self-contained HTML page (inline CSS and a little
/// plain JavaScript, nothing fetched from elsewhere). The server renders every table; the
/// script only refreshes the `<main>` part from `GET /?part=main` every few seconds and sends
/// the actions (retry, cancel, trigger) with the token the operator typed, which stays in
/// the tab's `sessionStorage` and never goes into a URL.
enum DashboardPage {
    struct Context {
        var workerID: String
        var workerHealthy: Bool
        var refreshSeconds: Double
        var actionsEnabled: Bool
        var snapshot: OperationsSnapshot?
        var snapshotError: String?
        var snapshotAt: Date
        var backups: BackupFiles?
        var backupDirectory: String?
        var filesystem: (bytes: Int64, free: Int64)?
        var now: Date
    }

    /// The whole page; `nonce` is the Content-Security-Policy nonce of the inline script.
    static func page(_ context: Context, nonce: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>closebell · \(esc(context.workerID))</title>
        <style>\(css)</style></head>
        <body data-refresh="\(Int(max(1, context.refreshSeconds)))">
        <header><h1>closebell</h1><span class="muted">worker \(esc(context.workerID))</span>
        <form id="auth" class="auth"><label>Token <input id="token" type="password" autocomplete="off" placeholder="trigger token"></label>
        <span id="message" role="status"></span></form></header>
        <main id="main">\(main(context))</main>
        <script nonce="\(nonce)">\(script)</script>
        </body></html>
        """
    }

    /// The refreshable part of the page.
    static func main(_ context: Context) -> String {
        var html = ""
        let healthy = context.workerHealthy && context.snapshot != nil
        html += "<p class=\"status\"><span class=\"pill \(healthy ? "ok" : "bad")\" id=\"health\">\(healthy ? "healthy" : "degraded")</span> "
        html += "worker loops \(context.workerHealthy ? "running" : "stopped") · database "
        html += context.snapshot == nil ? "<b class=\"bad\">unreachable</b>" : "ok"
        html += " · data as of <time>\(esc(OpsFormat.iso(context.snapshotAt)))</time></p>"
        if let error = context.snapshotError { html += "<p class=\"error\">\(esc(error))</p>" }
        guard let s = context.snapshot else { return html + backups(context) }

        // Queue depth.
        let states = ["available", "running", "succeeded", "failed", "cancelled"]
        var byState: [String: Int] = [:]
        var byTask: [String: [String: Int]] = [:]
        for entry in s.queue.depth {
            byState[entry.state, default: 0] += entry.count
            byTask[entry.task, default: [:]][entry.state, default: 0] += entry.count
        }
        html += "<section id=\"queue\"><h2>Queue</h2><div class=\"cards\">"
        for state in states {
            html += "<div class=\"card \(state)\" data-state=\"\(state)\"><b class=\"count\">\(byState[state] ?? 0)</b><span>\(state)</span></div>"
        }
        html += "<div class=\"card\"><b>\(esc(duration(s.queue.oldestWaitingSeconds)))</b><span>oldest waiting</span></div></div>"
        html += "<table id=\"queue-by-task\"><thead><tr><th>task</th>" + states.map { "<th>\($0)</th>" }.joined() + "</tr></thead><tbody>"
        for task in byTask.keys.sorted() {
            html += "<tr data-task=\"\(esc(task))\"><td>\(esc(task))</td>"
            html += states.map { "<td class=\"num\" data-state=\"\($0)\">\(byTask[task]?[$0] ?? 0)</td>" }.joined() + "</tr>"
        }
        html += "</tbody></table></section>"

        // Running jobs.
        html += "<section id=\"running\"><h2>Running</h2>"
        if s.queue.running.isEmpty {
            html += "<p class=\"muted\">No job is running.</p>"
        } else {
            html += "<table><thead><tr><th>job</th><th>task</th><th>worker</th><th>heartbeat age</th><th>running for</th><th>progress</th><th></th></tr></thead><tbody>"
            for job in s.queue.running {
                let id = (job["id"] as? NSNumber)?.int64Value ?? (job["id"] as? Int64) ?? 0
                let heartbeat = (job["heartbeat_at"] as? String).flatMap(parseISO).map { duration(context.now.timeIntervalSince($0)) } ?? "–"
                html += "<tr data-job=\"\(id)\"><td>\(id)</td><td>\(esc(job["task"] as? String ?? ""))</td><td>\(esc(job["locked_by"] as? String ?? ""))</td>"
                html += "<td>\(esc(heartbeat))</td><td>\(esc(duration((job["running_seconds"] as? Double) ?? 0)))</td>"
                html += "<td class=\"progress\">\(esc(compactJSON(job["progress"])))</td><td>\(actionButton("cancel", id, context))</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "</section>"

        // Waiting jobs.
        html += "<section id=\"waiting\"><h2>Waiting</h2>"
        if s.waiting.isEmpty {
            html += "<p class=\"muted\">No job is waiting.</p>"
        } else {
            html += "<table><thead><tr><th>job</th><th>task</th><th>queue</th><th>priority</th><th>runs at</th><th>attempts</th><th></th></tr></thead><tbody>"
            for job in s.waiting {
                html += "<tr data-job=\"\(job.id)\"><td>\(job.id)</td><td>\(esc(job.task))</td><td>\(esc(job.queue))</td><td class=\"num\">\(job.priority)</td>"
                html += "<td>\(esc(job.runAt ?? ""))</td><td class=\"num\">\(job.attempts)</td><td>\(actionButton("cancel", job.id, context))</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "</section>"

        // Cycle runs.
        html += "<section id=\"cycles\"><h2>Cycle runs</h2>"
        if context.actionsEnabled {
            html += "<form class=\"trigger\" data-action=\"trigger\"><select name=\"cycle\">"
            html += s.cycleNames.map { "<option>\(esc($0))</option>" }.joined()
            html += "</select> <label><input type=\"checkbox\" name=\"force\"> force</label> <button type=\"submit\">Trigger cycle</button></form>"
        }
        if s.runs.isEmpty { html += "<p class=\"muted\">No cycle has run yet.</p>" }
        for run in s.runs {
            html += "<article class=\"run\" data-run=\"\(run.runID)\" data-cycle=\"\(esc(run.cycle))\" data-state=\"\(esc(run.state))\">"
            html += "<h3>\(esc(run.cycle)) \(esc(run.period)) <span class=\"pill \(stateClass(run.state))\">\(esc(run.state))</span> <span class=\"muted\">run \(run.runID)"
            if let started = run.startedAt { html += " · started \(esc(started))" }
            if let finished = run.finishedAt { html += " · finished \(esc(finished))" }
            html += "</span></h3><table><thead><tr><th>task</th><th>outcome</th><th>duration</th><th>rows</th><th>error</th><th></th></tr></thead><tbody>"
            for task in run.tasks {
                html += "<tr class=\"task\" data-task=\"\(esc(task.task))\" data-job=\"\(task.jobID)\"><td>\(esc(task.task))</td>"
                html += "<td><span class=\"pill \(stateClass(task.state))\">\(esc(task.state))</span></td>"
                html += "<td class=\"num\">\(task.seconds.map(duration) ?? "–")</td><td class=\"num\">\(task.rows.map { number($0) } ?? "–")</td>"
                html += "<td class=\"err\">\(esc(task.error ?? ""))</td><td>\(actions(for: task.state, task.jobID, context))</td></tr>"
            }
            html += "</tbody></table></article>"
        }
        html += "</section>"

        // Failures.
        html += "<section id=\"failures\"><h2>Recent failures</h2>"
        if s.failures.isEmpty {
            html += "<p class=\"muted\">No failed, cancelled or retrying job.</p>"
        } else {
            html += "<table><thead><tr><th>job</th><th>task</th><th>state</th><th>attempts</th><th>when</th><th>error</th><th></th></tr></thead><tbody>"
            for f in s.failures {
                html += "<tr data-job=\"\(f.id)\"><td>\(f.id)</td><td>\(esc(f.task))</td><td><span class=\"pill \(stateClass(f.state))\">\(esc(f.state == "available" ? "retrying" : f.state))</span></td>"
                html += "<td class=\"num\">\(f.attempts)/\(f.maxAttempts)</td><td>\(esc(f.at ?? ""))</td><td class=\"err\">\(esc(f.error))</td>"
                html += "<td>\(actions(for: f.state, f.id, context))</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "</section>"

        html += backups(context)

        // Capacity and table sizes.
        html += "<section id=\"tables\"><h2>Database and tables</h2><p>Database size <b id=\"database-bytes\">\(bytes(s.databaseBytes))</b></p>"
        if s.tables.isEmpty {
            html += "<p class=\"muted\">No sizes recorded yet (the table_sizes task runs at the end of the daily cycle).</p>"
        } else {
            html += "<table><thead><tr><th>table</th><th>total</th><th>indexes</th><th>rows (est.)</th><th>growth (30 days)</th><th>recorded</th></tr></thead><tbody>"
            for t in s.tables {
                var growth = "–"
                if let g = t.growthBytes, let days = t.growthDays { growth = "\(g >= 0 ? "+" : "−")\(bytes(abs(g))) in \(days) d" }
                html += "<tr data-table=\"\(esc(t.table))\"><td>\(esc(t.table))</td><td class=\"num\">\(bytes(t.totalBytes))</td><td class=\"num\">\(bytes(t.indexBytes))</td>"
                html += "<td class=\"num\">\(number(Double(t.rowEstimate)))</td><td class=\"num\">\(esc(growth))</td><td>\(esc(t.recordedOn))</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "</section>"
        return html
    }

    private static func backups(_ context: Context) -> String {
        var html = "<section id=\"backups\"><h2>Backups</h2>"
        guard let b = context.backups else { return html + "<p class=\"muted\">No backup folder configured.</p></section>" }
        html += "<div class=\"cards\"><div class=\"card\"><b id=\"backup-count\">\(b.count)</b><span>files</span></div>"
        if let date = b.latestDate {
            html += "<div class=\"card\"><b>\(esc(duration(context.now.timeIntervalSince(date))))</b><span>newest is this old</span></div>"
            html += "<div class=\"card\"><b>\(bytes(b.latestBytes ?? 0))</b><span>newest size</span></div>"
        }
        html += "<div class=\"card\"><b>\(bytes(b.totalBytes))</b><span>all backups</span></div>"
        if let fs = context.filesystem, fs.bytes > 0 {
            let used = 100 * Double(fs.bytes - fs.free) / Double(fs.bytes)
            html += "<div class=\"card\"><b>\(String(format: "%.0f%%", used))</b><span>disk used (\(bytes(fs.free)) free)</span></div>"
        }
        html += "</div>"
        if let date = b.latestDate { html += "<p class=\"muted\">newest: \(esc(OpsFormat.iso(date))) in \(esc(context.backupDirectory ?? ""))</p>" }
        return html + "</section>"
    }

    private static func actions(for state: String, _ id: Int64, _ context: Context) -> String {
        switch state {
        case "failed", "cancelled": return actionButton("retry", id, context)
        case "available", "running": return actionButton("cancel", id, context)
        default: return ""
        }
    }

    private static func actionButton(_ action: String, _ id: Int64, _ context: Context) -> String {
        guard context.actionsEnabled else { return "" }
        return "<button type=\"button\" class=\"action\" data-action=\"\(action)\" data-job=\"\(id)\">\(action)</button>"
    }

    private static func stateClass(_ state: String) -> String {
        switch state {
        case "succeeded": return "ok"
        case "failed", "partial": return "bad"
        case "cancelled": return "warn"
        default: return "info"
        }
    }

    /// HTML-escapes text (element content and attribute values).
    static func esc(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func bytes(_ value: Int64) -> String {
        ByteCountFormatter.string(fromByteCount: value, countStyle: .binary)
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.2f", value)
    }

    static func duration(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 60 { return String(format: "%.1f s", s) }
        if s < 3600 { return "\(Int(s) / 60) min \(Int(s) % 60) s" }
        if s < 172_800 { return "\(Int(s) / 3600) h \(Int(s) % 3600 / 60) min" }
        return "\(Int(s) / 86_400) d \(Int(s) % 86_400 / 3600) h"
    }

    private static func compactJSON(_ value: Any?) -> String {
        guard let value, !(value is NSNull),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "" }
        let text = String(decoding: data, as: UTF8.self)
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }

    private static func parseISO(_ text: String) -> Date? {
        try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static let css = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
        header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#1d2330;color:#fff}
        header h1{font-size:1.2em;margin:0}.auth{margin-left:auto}.auth input{width:14em}
        main{padding:0 1.2em 2em}section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:1em 0;padding:.4em 1em 1em}
        h2{font-size:1.05em;margin:.6em 0}h3{font-size:.95em;margin:.8em 0 .3em}
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eef0f3;vertical-align:top}
        th{font-weight:600;color:#56607a}.num{text-align:right;font-variant-numeric:tabular-nums}
        .cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #dde1e8;border-radius:6px;padding:.4em .8em;min-width:7em}
        .card b{display:block;font-size:1.4em}.card span,.muted{color:#6b7488}
        .pill{display:inline-block;border-radius:9px;padding:0 .55em;font-size:.85em;background:#e4e8f0}
        .ok{background:#d8f3df;color:#13602b}.bad{background:#fbdcdc;color:#8a1515}.warn{background:#fdf0cc;color:#7a5500}.info{background:#dfeafd;color:#1c4a94}
        .err{color:#8a1515;max-width:40em;word-break:break-word}.error{color:#8a1515}
        .progress{font-family:ui-monospace,monospace;font-size:.85em}button{cursor:pointer}#message{margin-left:1em}
        """

    static let script = """
        (function () {
          var main = document.getElementById('main'), message = document.getElementById('message');
          var token = document.getElementById('token');
          token.value = sessionStorage.getItem('closebell-token') || '';
          token.addEventListener('change', function () { sessionStorage.setItem('closebell-token', token.value); });
          document.getElementById('auth').addEventListener('submit', function (e) { e.preventDefault(); });
          function say(text, bad) { message.textContent = text; message.className = bad ? 'pill bad' : 'pill ok'; }
          function refresh() {
            fetch('/?part=main', {cache: 'no-store'}).then(function (r) { return r.text(); })
              .then(function (html) {
                var count = Number(main.dataset.refreshed || 0) + 1;
                main.innerHTML = html;
                main.dataset.refreshed = String(count);
              }).catch(function () { say('refresh failed', true); });
          }
          function send(url) {
            if (!token.value) { say('enter the trigger token first', true); return; }
            fetch(url, {method: 'POST', headers: {'Authorization': 'Bearer ' + token.value}})
              .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, status: r.status, body: body}; }); })
              .then(function (res) {
                say(res.ok ? (res.body.message || 'done') : ('HTTP ' + res.status + ': ' + (res.body.error || '')), !res.ok);
                refresh();
              }).catch(function (err) { say(String(err), true); });
          }
          main.addEventListener('click', function (e) {
            var b = e.target.closest('button.action');
            if (b) { send('/jobs/' + encodeURIComponent(b.dataset.job) + '/' + b.dataset.action); }
          });
          main.addEventListener('submit', function (e) {
            var f = e.target.closest('form[data-action=trigger]');
            if (!f) { return; }
            e.preventDefault();
            send('/trigger?cycle=' + encodeURIComponent(f.cycle.value) + (f.force.checked ? '&force=true' : ''));
          });
          setInterval(refresh, 1000 * Number(document.body.dataset.refresh || 5));
        })();
        """
}
