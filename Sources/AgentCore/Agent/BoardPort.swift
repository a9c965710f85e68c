import TBJSON

/// What the run loop needs from the board: sampling, edge-driven readings and button events, the status LED.
/// `BoardRuntime` (AgentBoard) implements it over libgpiod or the simulated bank; tests may pass their own.
public protocol BoardIO: Sendable {
    /// Starts watching inputs (digital sensors report each debounced change at once; the button reports its
    /// events). `emit` may be called from any thread.
    func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError)
    /// Reads the named sensors (all when nil) on the board's own thread (reads block: a DS18B20 takes ~750 ms)
    /// and calls `done` there with telemetry keys and values; the loop stamps them. A failing sensor contributes
    /// nothing (its health says why). Returns at once; the caller keeps at most one sample in flight.
    func sample(_ names: [String]?, done: @escaping @Sendable ([(String, JSONValue)]) -> Void)
    /// Shows a state on the status LED.
    func show(_ state: LEDState)
    /// Sensor health for `getStatus` and telemetry: one object per sensor.
    func health() -> JSONValue
    /// Stops watching, restores the LED (sysfs trigger), waits for a read under way and releases lines.
    func stop()
}

public enum BoardEvent: Sendable, Equatable {
    /// A digital input changed (debounced): report at once.
    case reading(key: String, value: JSONValue)
    /// The button's long press was released past the threshold.
    case reprovisionRequested
    /// Three short presses within two seconds: ask ThingsBoard to let a person claim the device.
    case claimRequested
    /// The button is held past the threshold (true) or was released (false): the LED says "release now".
    case releaseNow(Bool)
    /// Something a person should read in the log (a stuck button, a failing line).
    case notice(String)
}

/// Runs one provisioning session (CONNECT as `provision`, request, response, DISCONNECT).
public protocol Provisioning: Sendable {
    func provision() async -> Result<DeviceCredentials, AgentError>
}
