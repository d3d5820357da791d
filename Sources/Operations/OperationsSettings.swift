import Foundation

/// Settings of the worker's HTTP endpoint (config section `http:`).
public struct HTTPEndpointSettings: Sendable, Equatable {
    /// `HOST:PORT` to serve on; nil serves nothing. Default nil (`--http` turns it on;
    /// `--http` without a host part, `:8008`, means loopback).
    public var listen: String?
    /// The bearer token of `POST /trigger`; nil or empty disables it (403).
    /// Env `CLOSEBELL_TRIGGER_TOKEN` wins over the file.
    public var triggerToken: String?
    /// Seconds allowed for the endpoint's database connect and statements. Default 3.
    public var databaseTimeoutSeconds: Int

    /// Creates settings; every value has the documented default.
    public init(listen: String? = nil, triggerToken: String? = nil, databaseTimeoutSeconds: Int = 3) {
        self.listen = listen
        self.triggerToken = triggerToken
        self.databaseTimeoutSeconds = databaseTimeoutSeconds
    }

    /// Applies `CLOSEBELL_TRIGGER_TOKEN` when set (it wins over the config file).
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let token = environment["CLOSEBELL_TRIGGER_TOKEN"], !token.isEmpty { triggerToken = token }
    }

    /// Refuses values that cannot work, naming the config key.
    public func validate() throws {
        if let listen {
            do {
                _ = try OperationsServer.parseListen(listen)
            } catch let error as OperationsError {
                throw OperationsError.invalidSetting(key: "http.listen", reason: error.description)
            }
        }
        guard (1...300).contains(databaseTimeoutSeconds) else {
            throw OperationsError.invalidSetting(key: "http.database_timeout_seconds", reason: "must be 1 to 300, got \(databaseTimeoutSeconds)")
        }
        if let token = triggerToken, !token.isEmpty, token.count < 16 {
            throw OperationsError.invalidSetting(key: "http.trigger_token", reason: "must be at least 16 characters (it guards POST /trigger)")
        }
    }
}
