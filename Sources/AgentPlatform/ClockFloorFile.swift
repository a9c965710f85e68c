import AgentCore

/// `state_dir/clock-floor`: the newest timestamp the agent has stored, in milliseconds since the epoch, so that
/// after a restart a clock that reads earlier (a board without RTC that booted at fake-hwclock's last save, a
/// clock set back) is recognised as wrong. Written crash-safe, at most once an hour and at shutdown: a floor, a
/// little behind the newest reading after a power cut, never ahead of it.
public struct ClockFloorFile: ClockFloorKeeping {
    public let path: String

    public init(stateDirectory: String) { self.path = stateDirectory + "/clock-floor" }

    /// The stored floor; nil when there is none or it is unreadable (then only the build time counts).
    public func load() -> Int64? {
        guard let bytes = try? AtomicFile.read(self.path) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        guard let value = Int64(text), value > 0 else { return nil }
        return value
    }

    public func save(_ milliseconds: Int64) throws(AgentError) {
        do {
            try AtomicFile.write(Array("\(milliseconds)\n".utf8), to: self.path, mode: 0o600)
        } catch {
            throw AgentError(.storageFailure, "cannot save the clock floor to \(self.path): \(error); the clock check after a restart falls back to the build time")
        }
    }
}
