import ChildProcess
import Foundation
import TestSupport
import XCTest

/// The files of compose/ checked by the tools that read them: `systemd-analyze verify` for the
/// units and `docker-compose config` for the compose file. Each test is skipped where its tool
/// is not installed (Debian packages `systemd` and `docker-compose`).
final class DeploymentFilesTests: XCTestCase {
    private let compose = TestCluster.repositoryRoot.appendingPathComponent("compose")

    private func tool(_ name: String) throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw XCTSkip("\(name) is not installed")
    }

    /// Runs a program with the given environment only; returns its status and output.
    private func run(_ program: String, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-deploy-\(UUID().uuidString)").path
        defer { unlink(log) }
        let child = try ChildProcess.spawn(program, arguments, replacing: environment, outputPath: log)
        return (child.wait(), (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    func testSystemdUnitsVerifyAndSandboxTheBackupDirectory() throws {
        let analyze = try tool("systemd-analyze")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-units-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // verify checks that ExecStart= names an executable: point it at the built binary.
        var units: [String] = []
        for name in ["closebell-migrate.service", "closebell-worker.service"] {
            let text = try String(contentsOf: compose.appendingPathComponent(name), encoding: .utf8)
            let path = folder.appendingPathComponent(name).path
            try text.replacingOccurrences(of: "/usr/local/bin/closebell", with: ClosebellBinary.path).write(toFile: path, atomically: true, encoding: .utf8)
            units.append(path)
        }
        let verified = try run(analyze, ["verify", "--man=no"] + units, environment: ["PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0"])
        XCTAssertEqual(verified.status, 0, verified.output)
        XCTAssertEqual(verified.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze verify warned")

        let worker = try String(contentsOf: compose.appendingPathComponent("closebell-worker.service"), encoding: .utf8)
        let lines = Set(worker.split(separator: "\n").map(String.init))
        for expected in [
            "Type=exec", "RestartPreventExitStatus=64 78", "ProtectSystem=strict", "PrivateDevices=true",
            "ProtectKernelTunables=true", "ProtectKernelModules=true", "ProtectKernelLogs=true", "ProtectControlGroups=true",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "RestrictNamespaces=true", "LockPersonality=true",
            "SystemCallFilter=@system-service", "CapabilityBoundingSet=", "Requires=closebell-migrate.service",
            "WorkingDirectory=/var/lib/closebell",
        ] {
            XCTAssertTrue(lines.contains(expected), "closebell-worker.service lacks \(expected)")
        }
        // The backup directory is inside a StateDirectory=, which ProtectSystem=strict leaves writable.
        let backupDir = try XCTUnwrap(lines.first { $0.hasPrefix("Environment=CLOSEBELL_BACKUP_DIR=") }?.split(separator: "=").last.map(String.init))
        let state = try XCTUnwrap(lines.first { $0.hasPrefix("StateDirectory=") }?.dropFirst("StateDirectory=".count))
        let writable = state.split(separator: " ").map { "/var/lib/\($0)" }
        XCTAssertTrue(writable.contains(backupDir), "\(backupDir) is not among the state directories \(writable)")
        let migrate = try String(contentsOf: compose.appendingPathComponent("closebell-migrate.service"), encoding: .utf8)
        XCTAssertTrue(migrate.contains("Type=oneshot") && migrate.contains("ExecStart=/usr/local/bin/closebell migrate"))
    }

    func testComposeFileNeedsAPasswordAndKeepsBackupsOnTheVolume() throws {
        let dockerCompose = try tool("docker-compose")
        let file = compose.appendingPathComponent("docker-compose.yml").path
        // No compose/.env is read: --project-directory points at an empty folder.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-compose-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let base = ["PATH": "/usr/bin:/bin", "HOME": empty.path]
        let refused = try run(dockerCompose, ["-f", file, "--project-directory", empty.path, "config"], environment: base)
        XCTAssertNotEqual(refused.status, 0, "config passed without POSTGRES_PASSWORD")
        XCTAssertTrue(refused.output.contains("POSTGRES_PASSWORD"), refused.output)

        var environment = base
        environment["POSTGRES_PASSWORD"] = "test-only-password"
        let config = try run(dockerCompose, ["-f", file, "--project-directory", empty.path, "config"], environment: environment)
        XCTAssertEqual(config.status, 0, config.output)
        let text = config.output
        XCTAssertTrue(text.contains("CLOSEBELL_BACKUP_DIR: /var/backups/closebell"), text)
        XCTAssertTrue(text.contains("backups:/var/backups/closebell"), text)
        XCTAssertTrue(text.contains("image: timescale/timescaledb:2."), "the TimescaleDB image is pinned: \(text)")
        XCTAssertFalse(text.contains("latest-pg"), text)
        XCTAssertTrue(text.contains("shm_size"), text)
        XCTAssertTrue(text.contains("/livez"), text)
        XCTAssertFalse(text.contains("change-me"), text)
        for secret in ["DATABASE_URL_FILE: /run/secrets/database_url", "POLYGON_API_KEY_FILE: /run/secrets/polygon_api_key",
                       "CLOSEBELL_TRIGGER_TOKEN_FILE: /run/secrets/trigger_token"] {
            XCTAssertTrue(text.contains(secret), "missing \(secret)")
        }
        XCTAssertFalse(text.contains("POLYGON_API_KEY:"), "a secret passed as a variable")
    }
}
