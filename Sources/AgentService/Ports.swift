import AgentCore
import TBJSON

/// Where credentials live (the crash-safe store on flash).
public protocol CredentialKeeping: Sendable {
    /// The stored credentials for this server, if any.
    func load() -> DeviceCredentials?
    /// Replaces the stored credentials (crash-safe; the previous generation is kept).
    func save(_ credentials: DeviceCredentials) throws(AgentError)
}
