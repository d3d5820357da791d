import ArgumentParser
import Foundation
import Operations
import PostgresClient

/// `closebell report`: cycle runs, task trends, backups and table sizes of the last day or week.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise the last day or week: cycle runs, task trends, backups, table and index sizes.",
        discussion: """
            day covers the last 24 hours and week the last 7 days, each compared with the span before.
            Formats: text (default), json, csv (RFC 4180, long form: section,subject,item,metric,value,previous_value)
            and html (one self-contained file with inline SVG charts). Exit code 1 when the database cannot be read.
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(help: "day or week (default: day).")
    var period: String = "day"
    @Option(help: "text, json, csv or html (default: text).")
    var format: String = "text"
    @Option(help: "Write the report to this file instead of standard output.")
    var output: String?

    func validate() throws {
        guard ReportPeriod(rawValue: period) != nil else { throw ValidationError("--period must be day or week, got \"\(period)\"") }
        guard ReportFormat(rawValue: format) != nil else { throw ValidationError("--format must be text, json, csv or html, got \"\(format)\"") }
    }

    func run() async throws {
        guard let period = ReportPeriod(rawValue: period), let format = ReportFormat(rawValue: format) else { return }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(database.conninfo, applicationName: "closebell report")
        } catch {
            throw CommandFailure("report: cannot connect to the database: \(error)")
        }
        let text: String
        do {
            let report = try await OperationsReport.build(connection: connection, period: period)
            await connection.close()
            text = try report.render(format)
        } catch {
            await connection.close()
            throw CommandFailure("report: \(error)")
        }
        guard let output else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            throw CommandFailure("report: cannot write \(output): \(error.localizedDescription)")
        }
    }
}
