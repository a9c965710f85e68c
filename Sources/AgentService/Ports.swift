import AgentCore
import TBJSON

/// What the runtime needs from the board: sampling, edge-driven readings and button events, the status LED.
/// The real implementation sits on libgpiod or the simulated board (see `BoardRuntime`); tests may pass their own.
public protocol BoardIO: Sendable {
    /// Starts watching inputs (digital sensors report each debounced change at once; the button reports its
    /// events). `emit` may be called from any thread.
    func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError)
    /// Reads the named sensors (all when nil) now, as telemetry keys and values; the runtime stamps them.
    /// A failing sensor contributes nothing (its health says why).
    func sample(_ names: [String]?) async -> [(String, JSONValue)]
    /// Shows a state on the status LED.
    func show(_ state: LEDState)
    /// Sensor health for `getStatus` and telemetry: one object per sensor.
    func health() -> JSONValue
    /// Stops watching, restores the LED (sysfs trigger) and releases lines.
    func stop()
}

public enum BoardEvent: Sendable, Equatable {
    /// A digital input changed (debounced): report at once.
    case reading(key: String, value: JSONValue)
    /// The button's long press was released past the threshold.
    case reprovisionRequested
    /// The button is held past the threshold (true) or was released (false): the LED says "release now".
    case releaseNow(Bool)
    /// Something a person should read in the log (a stuck button, a failing line).
    case notice(String)
}

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

/// Runs one provisioning session (CONNECT as `provision`, request, response, DISCONNECT).
public protocol Provisioning: Sendable {
    func provision() async -> Result<DeviceCredentials, AgentError>
}
