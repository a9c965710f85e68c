/// The board's kernel files (`sys/bus/w1/…`, `sys/class/leds/…`), read below `[device] sysroot`.
///
/// Sensor reads need the kernel's error kind (a DHT sensor's EIO is worth retrying, a missing file is not), so
/// this port keeps it, which a plain "read the bytes" port would lose. Paths are relative to the system root
/// (`sys/class/thermal/thermal_zone0/temp`).
public protocol BoardFiles: Sendable {
    /// The whole file as text.
    func readText(_ path: String) throws(BoardFileError) -> String
    /// The names in a directory (no `.` or `..`), sorted.
    func list(_ directory: String) throws(BoardFileError) -> [String]
    /// Replaces the file's content the way sysfs attributes are written: one write of `text`.
    func writeText(_ text: String, to path: String) throws(BoardFileError)
    /// The path as a person finds it on disk, for messages.
    func displayPath(_ path: String) -> String
}

/// A board file could not be read or written.
public struct BoardFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case notFound
        case permissionDenied
        /// EIO, ETIMEDOUT, EAGAIN: the driver could not reach the device this time.
        case transient
        case other
    }

    public var kind: Kind
    /// The path as shown to people (below the system root).
    public var path: String
    /// The system's words for it (`Input/output error`).
    public var reason: String

    public init(_ kind: Kind, path: String, reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(self.path): \(self.reason)" }

    /// The same problem as a sensor failure.
    public var sensorFailure: SensorFailure {
        switch self.kind {
        case .notFound: return SensorFailure(.notFound, "\(self.path) does not exist")
        case .permissionDenied:
            return SensorFailure(.permissionDenied, "\(self.path): permission denied: run the agent as a user who may read it")
        case .transient: return SensorFailure(.transient, "\(self.path): \(self.reason) (the sensor did not answer)")
        case .other: return SensorFailure(.ioError, self.description)
        }
    }
}
