import Foundation

/// The output formats of `closebell report`.
public enum ReportFormat: String, Sendable, CaseIterable {
    /// Aligned plain text.
    case text
    /// The report as one JSON document (snake_case keys).
    case json
    /// RFC 4180 CSV in long form: `section,subject,item,metric,value,previous_value`.
    case csv
    /// One self-contained HTML file with inline SVG charts (no scripts, no network).
    case html
}

extension OperationsReport {
    /// Renders the report in `format`.
    public func render(_ format: ReportFormat) throws -> String {
        switch format {
        case .text: return renderText()
        case .json:
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
        case .csv: return renderCSV()
        case .html: return renderHTML()
        }
    }

    // MARK: - Text

    func renderText() -> String {
        var out = "closebell report: \(period) from \(from) to \(to) (compared with \(previousFrom) to \(from))\n\n"
        out += "Cycle runs (\(runs.count))\n"
        if runs.isEmpty { out += "  none\n" }
        for run in runs {
            out += "  \(run.cycle) \(run.period) run \(run.runID): \(run.state), \(ReportFormatting.duration(run.durationSeconds)), started \(run.startedAt)\n"
            out += ReportFormatting.columns(
                ["task", "state", "attempts", "duration", "rows", "bytes freed", "error"],
                run.tasks.map { [$0.task, $0.state, "\($0.attempts)", ReportFormatting.duration($0.durationSeconds),
                                 $0.rows.map { "\($0)" } ?? "", $0.bytesFreed.map { ReportFormatting.bytes($0) } ?? "", $0.error ?? ""] },
                indent: "    ")
        }
        out += "\nTasks (this period vs previous)\n"
        out += tasks.isEmpty ? "  none\n" : ReportFormatting.columns(
            ["task", "jobs", "failed", "avg duration", "prev avg", "rows", "prev rows", "bytes freed"],
            tasks.map { [$0.task, "\($0.jobs) (\(ReportFormatting.delta($0.jobs, $0.previousJobs)))", "\($0.failed) (prev \($0.previousFailed))",
                         ReportFormatting.duration($0.averageSeconds), ReportFormatting.duration($0.previousAverageSeconds),
                         "\($0.rows)", "\($0.previousRows)", ReportFormatting.bytes($0.bytesFreed)] },
            indent: "  ")
        out += "\nBackups (\(backups.count))\n"
        out += backups.isEmpty ? "  none\n" : ReportFormatting.columns(
            ["finished", "file", "size", "duration"],
            backups.map { [$0.finishedAt, $0.file, ReportFormatting.bytes($0.bytes), ReportFormatting.duration($0.seconds)] }, indent: "  ")
        out += "\nTable sizes\n"
        out += tables.isEmpty ? "  none recorded (the table_sizes task records them daily)\n" : ReportFormatting.columns(
            ["table", "recorded", "total", "table", "indexes", "rows (est.)", "growth", "per day"],
            tables.map { [$0.table, $0.recordedOn, ReportFormatting.bytes($0.totalBytes), ReportFormatting.bytes($0.tableBytes),
                          ReportFormatting.bytes($0.indexBytes), "\($0.rowEstimate)", ReportFormatting.signedBytes($0.growthBytes),
                          $0.growthPerDayBytes.map { ReportFormatting.signedBytes(Int64($0)) } ?? ""] },
            indent: "  ")
        out += "\nData completeness (last 30 days)\n"
        out += (completeness ?? []).isEmpty ? "  none recorded (the completeness task records it daily)\n"
            : (completeness ?? []).map { "  \($0.completenessSentence)\n" }.joined()
        return out
    }

    // MARK: - CSV

    func renderCSV() -> String {
        var rows: [[String]] = [["section", "subject", "item", "metric", "value", "previous_value"]]
        func add(_ section: String, _ subject: String, _ item: String, _ metric: String, _ value: String?, _ previous: String? = nil) {
            guard let value else { return }
            rows.append([section, subject, item, metric, value, previous ?? ""])
        }
        for run in runs {
            let subject = "\(run.cycle) \(run.period) run \(run.runID)"
            add("run", subject, "", "state", run.state)
            add("run", subject, "", "started_at", run.startedAt)
            add("run", subject, "", "duration_s", run.durationSeconds.map { ReportFormatting.number($0) })
            for task in run.tasks {
                add("run_task", subject, task.task, "state", task.state)
                add("run_task", subject, task.task, "attempts", "\(task.attempts)")
                add("run_task", subject, task.task, "duration_s", task.durationSeconds.map { ReportFormatting.number($0) })
                add("run_task", subject, task.task, "rows", task.rows.map { "\($0)" })
                add("run_task", subject, task.task, "bytes_freed", task.bytesFreed.map { "\($0)" })
                add("run_task", subject, task.task, "error", task.error)
            }
        }
        for t in tasks {
            add("task", t.task, "", "jobs", "\(t.jobs)", "\(t.previousJobs)")
            add("task", t.task, "", "succeeded", "\(t.succeeded)", "\(t.previousSucceeded)")
            add("task", t.task, "", "failed", "\(t.failed)", "\(t.previousFailed)")
            add("task", t.task, "", "avg_duration_s", t.averageSeconds.map { ReportFormatting.number($0) } ?? "", t.previousAverageSeconds.map { ReportFormatting.number($0) })
            add("task", t.task, "", "rows", "\(t.rows)", "\(t.previousRows)")
            add("task", t.task, "", "bytes_freed", "\(t.bytesFreed)", "\(t.previousBytesFreed)")
        }
        for b in backups {
            add("backup", b.file, "job \(b.jobID)", "bytes", "\(b.bytes)")
            add("backup", b.file, "job \(b.jobID)", "seconds", ReportFormatting.number(b.seconds))
            add("backup", b.file, "job \(b.jobID)", "finished_at", b.finishedAt)
        }
        for t in tables {
            add("table", t.table, t.recordedOn, "total_bytes", "\(t.totalBytes)")
            add("table", t.table, t.recordedOn, "table_bytes", "\(t.tableBytes)")
            add("table", t.table, t.recordedOn, "index_bytes", "\(t.indexBytes)")
            add("table", t.table, t.recordedOn, "row_estimate", "\(t.rowEstimate)")
            add("table", t.table, t.recordedOn, "growth_bytes", "\(t.growthBytes)")
            add("table", t.table, t.recordedOn, "growth_per_day_bytes", t.growthPerDayBytes.map { ReportFormatting.number($0) })
        }
        for c in completeness ?? [] {
            add("completeness", c.table, "\(c.days) days", "expected", "\(c.expected)")
            add("completeness", c.table, "\(c.days) days", "present", "\(c.present)")
            add("completeness", c.table, "\(c.days) days", "percent", c.percent.map { ReportFormatting.number($0) })
        }
        return rows.map { $0.map(Self.csvField).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 4180: fields holding a comma, quote, CR or LF are quoted, quotes doubled.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: - HTML

    func renderHTML() -> String {
        let e = ReportFormatting.escape
        var body = "<h1>closebell report: \(e(period))</h1>\n<p class=\"muted\">\(e(from)) to \(e(to)), compared with \(e(previousFrom)) to \(e(from))</p>\n"

        body += "<h2>Cycle runs</h2>\n"
        if runs.isEmpty { body += "<p>No cycle run started in this period.</p>\n" }
        for run in runs {
            body += "<h3>\(e(run.cycle)) \(e(run.period)) <span class=\"state \(e(run.state))\">\(e(run.state))</span></h3>\n"
            body += "<p class=\"muted\">run \(run.runID), started \(e(run.startedAt)), \(e(ReportFormatting.duration(run.durationSeconds)))</p>\n"
            body += ReportFormatting.htmlTable(
                ["task", "state", "attempts", "duration", "rows", "bytes freed", "error"],
                run.tasks.map { [$0.task, $0.state, "\($0.attempts)", ReportFormatting.duration($0.durationSeconds),
                                 $0.rows.map { "\($0)" } ?? "", $0.bytesFreed.map { ReportFormatting.bytes($0) } ?? "", $0.error ?? ""] })
        }

        body += "<h2>Tasks: this period against the previous one</h2>\n"
        body += ReportFormatting.htmlTable(
            ["task", "jobs", "prev jobs", "failed", "prev failed", "avg duration", "prev avg", "rows", "prev rows", "bytes freed"],
            tasks.map { [$0.task, "\($0.jobs)", "\($0.previousJobs)", "\($0.failed)", "\($0.previousFailed)",
                         ReportFormatting.duration($0.averageSeconds), ReportFormatting.duration($0.previousAverageSeconds),
                         "\($0.rows)", "\($0.previousRows)", ReportFormatting.bytes($0.bytesFreed)] })
        if !tasks.isEmpty {
            body += SVGCharts.pairedBars(
                title: "Mean duration by task (seconds): this period (dark) and previous (light)",
                items: tasks.map { ($0.task, $0.averageSeconds ?? 0, $0.previousAverageSeconds ?? 0) })
        }

        body += "<h2>Backups</h2>\n"
        body += backups.isEmpty ? "<p>No backup job succeeded in this period.</p>\n" : ReportFormatting.htmlTable(
            ["finished", "file", "size", "duration"],
            backups.map { [$0.finishedAt, $0.file, ReportFormatting.bytes($0.bytes), ReportFormatting.duration($0.seconds)] })
        if !backups.isEmpty {
            body += SVGCharts.bars(title: "Backup size (bytes)", items: backups.map { (String($0.finishedAt.prefix(16)), Double($0.bytes)) })
        }

        if let completeness, !completeness.isEmpty {
            body += "<h2>Data completeness (last 30 days)</h2>\n<ul>\n"
            body += completeness.map { "<li>\(ReportFormatting.escape($0.completenessSentence))</li>\n" }.joined() + "</ul>\n"
        }
        body += "<h2>Table and index sizes</h2>\n"
        body += tables.isEmpty ? "<p>No sizes recorded yet: the table_sizes task of the daily cycle records them.</p>\n" : ReportFormatting.htmlTable(
            ["table", "recorded", "total", "table", "indexes", "rows (est.)", "growth", "per day"],
            tables.map { [$0.table, $0.recordedOn, ReportFormatting.bytes($0.totalBytes), ReportFormatting.bytes($0.tableBytes),
                          ReportFormatting.bytes($0.indexBytes), "\($0.rowEstimate)", ReportFormatting.signedBytes($0.growthBytes),
                          $0.growthPerDayBytes.map { ReportFormatting.signedBytes(Int64($0)) } ?? ""] })
        for table in tables where table.history.count > 1 {
            body += SVGCharts.line(title: "\(table.table): total bytes by day", points: table.history.map { ($0.day, Double($0.totalBytes)) })
        }

        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8" />
            <title>closebell report: \(e(period)) to \(e(to))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; margin: 0.5em 0 1em; }
            th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
            th { background: #f3f3f3; }
            .muted { color: #666; }
            .state { font-size: 0.8em; padding: 1px 6px; border-radius: 3px; background: #ddd; }
            .succeeded { background: #c8efc8; } .partial { background: #fde9a9; } .failed { background: #f6b8b8; }
            svg { display: block; margin: 0.5em 0 1.5em; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }
}

/// Small formatting helpers of the report renderers.
enum ReportFormatting {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    static func number(_ value: Double) -> String { String(format: "%.3f", value) }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "-" }
        if seconds < 1 { return "\(Int(seconds * 1000))ms" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let s = Int(seconds)
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    static func bytes(_ value: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = Double(value), i = 0
        while abs(v) >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(value) B" : String(format: "%.1f %@", v, units[i])
    }

    static func signedBytes(_ value: Int64) -> String { (value > 0 ? "+" : "") + bytes(value) }

    static func delta(_ now: Int, _ before: Int) -> String { now >= before ? "+\(now - before)" : "\(now - before)" }

    static func columns(_ header: [String], _ rows: [[String]], indent: String) -> String {
        // One line per row: line breaks inside cells (error texts) become spaces.
        let rows = rows.map { $0.map { $0.split(whereSeparator: \.isNewline).joined(separator: " ") } }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            indent + cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        return line(header) + rows.map(line).joined()
    }

    static func htmlTable(_ header: [String], _ rows: [[String]]) -> String {
        var out = "<table>\n<tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for row in rows { out += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
        return out + "</table>\n"
    }
}

/// Inline SVG charts (no scripts, no external resources).
enum SVGCharts {
    static func label(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1e9 { return String(format: "%.1fG", value / 1e9) }
        if magnitude >= 1e6 { return String(format: "%.1fM", value / 1e6) }
        if magnitude >= 1e3 { return String(format: "%.1fk", value / 1e3) }
        return String(format: value == value.rounded() ? "%.0f" : "%.2f", value)
    }

    /// Horizontal bars, one row per item with this and the previous value.
    static func pairedBars(title: String, items: [(String, Double, Double)]) -> String {
        let e = ReportFormatting.escape
        let rowHeight = 22, labelWidth = 150, width = 640
        let top = items.map { max($0.1, $0.2) }.max() ?? 0
        let scale = top > 0 ? Double(width - labelWidth - 60) / top : 0
        var svg = "<svg width=\"\(width)\" height=\"\(items.count * rowHeight + 24)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        svg += "<text x=\"0\" y=\"14\" font-size=\"12\">\(e(title))</text>\n"
        for (i, item) in items.enumerated() {
            let y = 22 + i * rowHeight
            svg += "<text x=\"0\" y=\"\(y + 13)\" font-size=\"11\">\(e(item.0))</text>\n"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(Int(item.1 * scale))\" height=\"9\" fill=\"#3465a4\" />\n"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 10)\" width=\"\(Int(item.2 * scale))\" height=\"7\" fill=\"#a9c1e0\" />\n"
            svg += "<text x=\"\(labelWidth + Int(max(item.1, item.2) * scale) + 4)\" y=\"\(y + 13)\" font-size=\"10\">\(e(label(item.1)))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Vertical bars.
    static func bars(title: String, items: [(String, Double)]) -> String {
        let e = ReportFormatting.escape
        let height = 140, barWidth = 28, gap = 10
        let width = max(200, items.count * (barWidth + gap) + 20)
        let top = items.map(\.1).max() ?? 0
        var svg = "<svg width=\"\(width)\" height=\"\(height + 30)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        svg += "<text x=\"0\" y=\"14\" font-size=\"12\">\(e(title))</text>\n"
        for (i, item) in items.enumerated() {
            let h = top > 0 ? Int(item.1 / top * Double(height - 30)) : 0
            let x = 10 + i * (barWidth + gap)
            svg += "<rect x=\"\(x)\" y=\"\(height - h)\" width=\"\(barWidth)\" height=\"\(h)\" fill=\"#4e9a06\"><title>\(e(item.0)): \(e(label(item.1)))</title></rect>\n"
            svg += "<text x=\"\(x)\" y=\"\(height - h - 3)\" font-size=\"9\">\(e(label(item.1)))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// A line over days.
    static func line(title: String, points: [(String, Double)]) -> String {
        let e = ReportFormatting.escape
        let width = 480, height = 120, left = 50
        let low = points.map(\.1).min() ?? 0, high = points.map(\.1).max() ?? 0
        let span = high > low ? high - low : 1
        let step = points.count > 1 ? Double(width - left - 10) / Double(points.count - 1) : 0
        let coordinates = points.enumerated().map { i, p in
            String(format: "%.1f,%.1f", Double(left) + Double(i) * step, 20 + (1 - (p.1 - low) / span) * Double(height - 40))
        }.joined(separator: " ")
        var svg = "<svg width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        svg += "<text x=\"0\" y=\"12\" font-size=\"12\">\(e(title))</text>\n"
        svg += "<text x=\"0\" y=\"26\" font-size=\"9\">\(e(label(high)))</text>\n<text x=\"0\" y=\"\(height - 18)\" font-size=\"9\">\(e(label(low)))</text>\n"
        svg += "<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"#cc0000\" stroke-width=\"1.5\" />\n"
        if let first = points.first, let last = points.last {
            svg += "<text x=\"\(left)\" y=\"\(height - 4)\" font-size=\"9\">\(e(first.0))</text>\n"
            svg += "<text x=\"\(width - 70)\" y=\"\(height - 4)\" font-size=\"9\">\(e(last.0))</text>\n"
        }
        return svg + "</svg>\n"
    }
}

extension CompletenessLine {
    /// "market_data_daily: 98.7% of symbol-days present over 21 trading days (12 missing)".
    var completenessSentence: String {
        let share = percent.map { String(format: "%.1f%%", $0) } ?? "n/a"
        return "\(table): \(share) of symbol-days present over \(days) trading days (\(expected - present) missing)"
    }
}
