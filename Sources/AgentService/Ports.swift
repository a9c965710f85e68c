import AgentCore
import TBJSON

/// Where credentials live (the crash-safe store on flash).
public protocol CredentialKeeping: Sendable {
    /// What is stored for this server when the agent starts: stored and pending credentials, or why what is stored
    /// may be neither used nor replaced (a newer format, unreadable).
    func inventory() -> CredentialInventory
    /// The stored credentials for this server, if any.
    func load() -> DeviceCredentials?
    /// Replaces the stored credentials (crash-safe; the previous generation is kept; a pending generation is
    /// removed). For the first provisioning.
    func save(_ credentials: DeviceCredentials) throws(AgentError)
    /// The pending credentials for this server (from a re-provisioning, not connected yet), if any.
    func loadPending() -> DeviceCredentials?
    /// Stores credentials from a re-provisioning as the pending generation, before they are tried (crash-safe; the
    /// stored credentials are not touched).
    func savePending(_ credentials: DeviceCredentials) throws(AgentError)
    /// The pending credentials connected: they become the stored ones (crash-safe; the replaced ones become the
    /// previous generation). Saves `credentials` directly if the pending generation does not hold them.
    func commitPending(_ credentials: DeviceCredentials) throws(AgentError)
    /// The server rejected the pending credentials: forget them.
    func discardPending() throws(AgentError)
}
