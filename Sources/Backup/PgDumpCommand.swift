import ChildProcess
import PostgresClient

extension BackupRunner {
    /// The pg_dump command a backup of `database` runs (its arguments and environment, the
    /// password only by `passfile`), for measuring pg_dump alone beside a backup
    /// (`closebell bench backup`).
    public static func pgDumpCommand(executable: String, info: ConnectionInfo, database: String, passfile: String?,
                                     settings: BackupSettings) -> ChildCommand {
        ChildCommand(
            executable: executable, arguments: pgDumpArguments(lockWaitTimeout: settings.lockWaitTimeout),
            environment: childEnvironment(info: info, database: database, passfile: passfile, connectTimeout: settings.connectTimeout))
    }
}
