import AgentCore
import AgentPlatform
import Logging

/// The credential store as the runtime sees it: credentials for the configured server and this device.
public struct StoredCredentialsAdapter: CredentialKeeping {
    let store: CredentialStore
    let server: ServerEndpoint
    let deviceName: String
    let logger: Logger
    /// The wall clock in seconds since the epoch, for `issuedAt`.
    let wallSeconds: @Sendable () -> Int64

    public init(
        store: CredentialStore, server: ServerEndpoint, deviceName: String, logger: Logger,
        wallSeconds: @escaping @Sendable () -> Int64 = { SystemClock().wallMilliseconds() / 1000 }
    ) {
        self.store = store
        self.server = server
        self.deviceName = deviceName
        self.logger = logger
        self.wallSeconds = wallSeconds
    }

    public func load() -> DeviceCredentials? {
        do {
            let lookup = try self.store.load(for: self.server)
            for warning in lookup.warnings { self.logger.warning("\(warning)") }
            return lookup.credentials?.credentials
        } catch {
            self.logger.error("\(error.message)")
            return nil
        }
    }

    public func save(_ credentials: DeviceCredentials) throws(AgentError) {
        try self.store.save(self.record(credentials))
    }

    public func inventory() -> CredentialInventory {
        do {
            let stored = try self.store.load(for: self.server)
            for warning in stored.warnings { self.logger.warning("\(warning)") }
            let pending = try self.store.loadPending(for: self.server)
            for warning in pending.warnings { self.logger.warning("\(warning)") }
            return CredentialInventory(stored: stored.credentials != nil, pending: pending.credentials != nil)
        } catch {
            return CredentialInventory(stored: false, blocked: error.message)
        }
    }

    public func loadPending() -> DeviceCredentials? {
        do {
            return try self.store.loadPending(for: self.server).credentials?.credentials
        } catch {
            self.logger.error("\(error.message)")
            return nil
        }
    }

    public func savePending(_ credentials: DeviceCredentials) throws(AgentError) {
        try self.store.savePending(self.record(credentials))
    }

    public func commitPending(_ credentials: DeviceCredentials) throws(AgentError) {
        try self.store.commitPending(self.record(credentials))
    }

    public func discardPending() throws(AgentError) {
        try self.store.discardPending()
    }

    private func record(_ credentials: DeviceCredentials) -> StoredCredentials {
        StoredCredentials(
            server: self.server, deviceName: self.deviceName, credentials: credentials,
            issuedAt: UTCTimestamp(secondsSinceEpoch: self.wallSeconds()))
    }
}
