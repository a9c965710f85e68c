import AgentCore
import AgentHost
import AgentPlatform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A simulated board: one file per GPIO line in `directory`, named after the line (`GPIO17`), holding `0` or `1`,
/// the level on the pin (before `active_low`).
///
/// Inputs read their file and notice changes through inotify (event-driven, within a millisecond or so), so a
/// person or a test can press the button with `echo 1 > DIR/GPIO27`. Outputs (LED lines) write their file, with
/// a rename so a reader never sees it half written. A line addressed by chip and offset uses the file
/// `<chip>-<offset>` (`gpiochip0-17`).
public struct SimulatedGPIOBackend: GPIOBackend {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The file holding a line's level.
    public static func fileName(for address: LineAddress) -> String {
        switch address {
        case .name(let name): return name
        case .chipOffset(let chip, let offset):
            let base = chip.split(separator: "/").last.map(String.init) ?? chip
            return "\(base)-\(offset)"
        }
    }

    public func input(_ address: LineAddress, _ request: InputRequest) throws(AgentError) -> any GPIOInput {
        try SimulatedInput(directory: self.directory, address: address, request: request)
    }

    public func output(_ address: LineAddress, activeLow: Bool, initial: LineLevel, consumer: String)
        throws(AgentError) -> any GPIOOutput
    {
        let output = try SimulatedOutput(directory: self.directory, address: address, activeLow: activeLow)
        try output.write(initial)
        return output
    }

    /// One chip, `simulated`, whose lines are the files in the directory.
    public func describe() throws(AgentError) -> [GPIOChipDescription] {
        guard let names = SimulatedFiles.list(self.directory) else {
            throw AgentError(.hardwareUnavailable, "the simulated board's folder \(self.directory) does not exist: create it, or set `[gpio] simulated_dir`")
        }
        return [GPIOChipDescription(name: "simulated", label: self.directory, lineNames: names.filter { !$0.hasPrefix(".") })]
    }
}

/// A simulated input line.
final class SimulatedInput: GPIOInput {
    let address: LineAddress
    let path: String
    let fileName: String
    let activeLow: Bool
    let eventDescriptor: Int32
    /// The physical level last reported, to turn "the file changed" into edges.
    private let last: Mutex<LineLevel>

    init(directory: String, address: LineAddress, request: InputRequest) throws(AgentError) {
        self.address = address
        self.fileName = SimulatedGPIOBackend.fileName(for: address)
        self.path = "\(directory)/\(self.fileName)"
        self.activeLow = request.activeLow
        if SimulatedFiles.read(self.path) == nil {
            // A missing file is an unconnected pin: the bias decides its level, as on a real board.
            let biased: LineLevel? = switch request.bias {
            case .pullUp: .high
            case .pullDown: .low
            case .asIs, .disable: nil
            }
            guard let biased else {
                let existing = SimulatedFiles.list(directory)?.filter { !$0.hasPrefix(".") } ?? []
                throw AgentError(.hardwareUnavailable, "simulated GPIO line '\(self.fileName)' not found: create \(self.path) holding 0 or 1 (lines there: \(existing.isEmpty ? "none" : existing.joined(separator: ", ")))")
            }
            do {
                try SimulatedFiles.writeAtomically(biased.digit + "\n", to: self.path)
            } catch {
                throw AgentError(.hardwareUnavailable, "simulated GPIO line \(self.path) could not be created: \(error)")
            }
        }
        var fd: Int32 = -1
        if request.edges {
            fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else {
                let code = errno
                // Each watched simulated line takes one inotify instance; many agents on one machine (a simulated
                // fleet) run out of the per-user limit, 128 by default.
                let fix = code == EMFILE
                    ? "; too many inotify instances for this user: raise the limit (`sysctl fs.inotify.max_user_instances=1024`)"
                    : ""
                throw AgentError(.hardwareUnavailable, "inotify is unavailable (\(String(cString: strerror(code)))): cannot watch \(self.path)\(fix)")
            }
            let mask = UInt32(IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_CREATE)
            guard inotify_add_watch(fd, directory, mask) >= 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw AgentError(.hardwareUnavailable, "cannot watch the simulated board's folder \(directory): \(reason)")
            }
        }
        self.eventDescriptor = fd
        self.last = Mutex(.low)
        let physical = try self.readPhysical() ?? .low
        self.last.withLock { $0 = physical }
    }

    deinit {
        if self.eventDescriptor >= 0 { close(self.eventDescriptor) }
    }

    /// The level in the file; nil while the file is empty (caught between a truncate and a write).
    private func readPhysical() throws(AgentError) -> LineLevel? {
        guard let text = SimulatedFiles.read(self.path) else {
            throw AgentError(.hardwareUnavailable, "simulated GPIO line \(self.path) disappeared")
        }
        if text.allSatisfy(\.isWhitespace) { return nil }
        guard let level = LineLevel(digit: text) else {
            throw AgentError(.hardwareUnavailable, "simulated GPIO line \(self.path) holds \"\(text.prefix(20))\"; write 0 or 1")
        }
        return level
    }

    func read() throws(AgentError) -> LineLevel {
        let physical = try self.readPhysical() ?? self.last.withLock { $0 }
        return self.activeLow ? physical.inverted : physical
    }

    func readEdges() throws(AgentError) -> [EdgeEvent] {
        guard self.eventDescriptor >= 0 else { return [] }
        var touched = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(self.eventDescriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            touched = touched || SimulatedFiles.inotifyNames(buffer[0..<count]).contains(self.fileName)
        }
        guard touched, let physical = try self.readPhysical() else { return [] }
        let changed = self.last.withLock { last -> Bool in
            defer { last = physical }
            return last != physical
        }
        guard changed else { return [] }
        let level = self.activeLow ? physical.inverted : physical
        return [EdgeEvent(level: level, timestamp: SimulatedFiles.monotonicNow())]
    }
}

/// A simulated output line (an LED).
final class SimulatedOutput: GPIOOutput {
    let address: LineAddress
    let path: String
    let activeLow: Bool

    init(directory: String, address: LineAddress, activeLow: Bool) throws(AgentError) {
        self.address = address
        self.path = "\(directory)/\(SimulatedGPIOBackend.fileName(for: address))"
        self.activeLow = activeLow
        guard SimulatedFiles.list(directory) != nil else {
            throw AgentError(.hardwareUnavailable, "the simulated board's folder \(directory) does not exist: create it, or set `[gpio] simulated_dir`")
        }
    }

    func write(_ level: LineLevel) throws(AgentError) {
        let physical = self.activeLow ? level.inverted : level
        do {
            try SimulatedFiles.writeAtomically(physical.digit + "\n", to: self.path)
        } catch {
            throw AgentError(.hardwareUnavailable, "simulated GPIO line \(self.path) could not be written: \(error)")
        }
    }
}

/// The few file operations the simulated board needs.
enum SimulatedFiles {
    /// The file's text; nil when it cannot be read.
    static func read(_ path: String) -> String? {
        (try? POSIXFile.read(path, limit: 4096).get()).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The names in a directory, sorted; nil when it cannot be read.
    static func list(_ path: String) -> [String]? { try? POSIXFile.list(path).get() }

    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    /// Writes a temporary file beside `path` and renames it over `path`. No fsync: this is a simulation.
    static func writeAtomically(_ text: String, to path: String) throws(WriteError) {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(description: String(cString: strerror(errno))) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else {
            unlink(temporary)
            throw WriteError(description: "short write")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw WriteError(description: reason)
        }
    }

    /// The file names in a buffer of `struct inotify_event`s.
    static func inotifyNames(_ bytes: ArraySlice<UInt8>) -> [String] {
        let data = Array(bytes)
        var names: [String] = []
        var offset = 0
        let header = 16  // wd, mask, cookie, len: four 32-bit fields
        while offset + header <= data.count {
            let length = data[offset + 12..<offset + 16].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let start = offset + header
            let end = min(start + length, data.count)
            names.append(String(decoding: data[start..<end].prefix(while: { $0 != 0 }), as: UTF8.self))
            offset = start + length
        }
        return names
    }

    /// `CLOCK_MONOTONIC`, the clock the kernel stamps GPIO events with (the same as `AgentGPIO.MonotonicClock`;
    /// this module does not depend on that one).
    static func monotonicNow() -> Duration {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return .seconds(ts.tv_sec) + .nanoseconds(ts.tv_nsec)
    }
}
