import AgentCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// The GPIO adapter's shared half: lookup, error messages, timestamps. It calls no libgpiod function; those are in
// LibGPIODv1.swift or LibGPIODv2.swift, one of which the build compiles (Package.swift picks the API of the
// libgpiod it finds). Both provide the same internal interface:
//
//   enum LibGPIOD {
//       static let apiVersion: Int                       // 1 or 2
//       static var libraryVersion: String                // "1.6.3", "2.2.1"
//       static func describeChip(at path: String) throws(Errno) -> GPIOChipDescription
//       static func consumer(chipPath: String, offset: Int) -> String?
//       static func request(chipPath: String, offset: Int, _ config: LineConfig) throws(Errno) -> LibGPIODRequest
//   }
//   final class LibGPIODRequest: Sendable {
//       var eventDescriptor: Int32 { get }               // -1 without edges
//       var kernelDebounce: Duration? { get }            // what the kernel applies
//       func value() throws(Errno) -> LineLevel
//       func setValue(_ level: LineLevel) throws(Errno)
//       func pendingEdges() throws(Errno) -> [RawEdge]   // never blocks; [] when none are pending
//   }
//
// Lines are addressed by name or by (chip, offset), never by the deprecated sysfs numbers nor by chip number.

/// How to request one line, whatever the libgpiod API.
struct LineConfig: Sendable {
    enum Direction: Sendable {
        case input(bias: LineBias, edges: Bool, debounce: Duration)
        case output(initial: LineLevel)
    }
    var direction: Direction
    var activeLow: Bool
    var consumer: String
}

/// An edge as the kernel reported it: the new logical level and the kernel's timestamp (`CLOCK_MONOTONIC`).
struct RawEdge: Sendable, Equatable {
    var level: LineLevel
    var timestamp: Duration
}

/// A requested GPIO line: an input (optionally with both-edge events) or an output. Released when the last
/// reference goes away.
public final class GPIOLine: GPIOInput, GPIOOutput, Sendable {
    private let request: LibGPIODRequest
    public let address: LineAddress
    /// Where the line was found.
    public let location: GPIOLineLocation
    public var offset: Int { self.location.offset }
    public var eventDescriptor: Int32 { self.request.eventDescriptor }
    public var kernelDebounce: Duration? { self.request.kernelDebounce }

    private init(request: LibGPIODRequest, address: LineAddress, location: GPIOLineLocation) {
        self.request = request
        self.address = address
        self.location = location
    }

    /// Requests an input line with bias and active-low, and both-edge events when `request.edges` is set (with
    /// the kernel's debounce when `request.debounce` is not zero and the chip can).
    public static func input(_ address: LineAddress, _ request: InputRequest) throws(GPIOError) -> GPIOLine {
        let location = try Self.locate(address)
        let debounce = request.edges ? max(request.debounce, .zero) : .zero
        let config = LineConfig(
            direction: .input(bias: request.bias, edges: request.edges, debounce: debounce),
            activeLow: request.activeLow, consumer: request.consumer)
        return try Self.request(address, location, config, bias: request.bias)
    }

    /// Requests an output line (an LED) driven to `initial`.
    public static func output(_ address: LineAddress, activeLow: Bool, initial: LineLevel, consumer: String)
        throws(GPIOError) -> GPIOLine
    {
        let location = try Self.locate(address)
        let config = LineConfig(direction: .output(initial: initial), activeLow: activeLow, consumer: consumer)
        return try Self.request(address, location, config, bias: .asIs)
    }

    private static func request(_ address: LineAddress, _ location: GPIOLineLocation, _ config: LineConfig, bias: LineBias)
        throws(GPIOError) -> GPIOLine
    {
        do {
            let request = try LibGPIOD.request(chipPath: location.chip.path, offset: location.offset, config)
            return GPIOLine(request: request, address: address, location: location)
        } catch {
            throw Self.requestError(location: location, address: address, bias: bias, code: error)
        }
    }

    /// Finds the line on this machine's chips.
    static func locate(_ address: LineAddress) throws(GPIOError) -> GPIOLineLocation {
        try GPIOLookup.locate(address, in: GPIOChips.scan(), canonicalPath: GPIOChips.canonicalPath)
    }

    /// Turns a failed request into a message that names the line, the cause and the fix.
    static func requestError(location: GPIOLineLocation, address: LineAddress, bias: LineBias, code: Errno)
        -> GPIOError
    {
        let ENOTSUPP: CInt = 524  // the kernel's internal "not supported", which some drivers let through
        let biasRefused = bias != .asIs
            && (code == .invalidArgument || code == .notSupported || code.rawValue == ENOTSUPP
                || code.rawValue == EOPNOTSUPP)
        if biasRefused {
            return GPIOError(.biasUnsupported, "GPIO line \(address): bias '\(bias.rawValue)' is not supported by this kernel or chip (pull-up/pull-down needs Linux 5.5 or later); set `bias = \"as-is\"` and fit an external resistor (10 kΩ), or update the kernel", errno: code)
        }
        switch code {
        case .resourceBusy:
            let consumer = LibGPIOD.consumer(chipPath: location.chip.path, offset: location.offset)
            let who = consumer.map { "'\($0)'" } ?? "another program or a kernel driver"
            return GPIOError(.lineBusy, "GPIO line \(address) is busy: used by \(who); stop that program (or remove the overlay that claims the pin) or choose another line", errno: code)
        case .permissionDenied, .notPermitted:
            return GPIOError(.permissionDenied, "permission denied requesting GPIO line \(address): \(GPIOLookup.permissionFix)", errno: code)
        default:
            return GPIOError(.requestFailed, "GPIO line \(address) could not be requested: \(code)", errno: code)
        }
    }

    /// The current logical level.
    public func read() throws(AgentError) -> LineLevel {
        do {
            return try self.request.value()
        } catch {
            throw GPIOError(.ioFailed, "reading GPIO line \(self.address) failed: \(error)", errno: error).agentError
        }
    }

    /// Drives the line.
    public func write(_ level: LineLevel) throws(AgentError) {
        do {
            try self.request.setValue(level)
        } catch {
            throw GPIOError(.ioFailed, "setting GPIO line \(self.address) failed: \(error)", errno: error).agentError
        }
    }

    /// The pending edge events, without blocking.
    public func readEdges() throws(AgentError) -> [EdgeEvent] {
        guard self.eventDescriptor >= 0 else { return [] }
        let raw: [RawEdge]
        do {
            raw = try self.request.pendingEdges()
        } catch {
            if error == .interrupted || error == .resourceTemporarilyUnavailable { return [] }
            throw GPIOError(.ioFailed, "reading events of GPIO line \(self.address) failed: \(error)", errno: error).agentError
        }
        guard !raw.isEmpty else { return [] }
        return EdgeStamps.events(raw, kernelDebounce: self.kernelDebounce, now: MonotonicClock.now())
    }
}

/// From the kernel's edge stamps to the agent's timeline.
enum EdgeStamps {
    /// - A kernel that debounces reports an edge once the level has held for the period, stamped then: the line
    ///   settled one period earlier, and that is the time the software debouncer (and every reading) works with,
    ///   whether or not the kernel debounced.
    /// - Kernels before 5.7 stamped v1 events with the wall clock: such stamps (more than an hour off the
    ///   monotonic clock) are replaced by `now`, to stay on the timeline the debouncer works on.
    static func events(_ raw: [RawEdge], kernelDebounce: Duration?, now: Duration) -> [EdgeEvent] {
        raw.map { edge in
            var stamp = edge.timestamp
            if stamp > now + .seconds(3600) || stamp < now - .seconds(3600) {
                stamp = now
            } else if let period = kernelDebounce, period > .zero {
                stamp -= period
            }
            return EdgeEvent(level: edge.level, timestamp: stamp)
        }
    }
}

/// The chips of this machine, read through libgpiod.
enum GPIOChips {
    /// Every `/dev/gpiochipN` character device (links such as the Pi 5's `/dev/gpiochip4` are the same chip and
    /// are skipped), described.
    static func scan(devices: String = "/dev") -> GPIOChipScan {
        var scan = GPIOChipScan(chips: [])
        let names: [String]
        switch Self.list(devices) {
        case .success(let list): names = GPIOLookup.chipOrder(list)
        case .failure: return scan
        }
        for name in names {
            let path = devices + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFCHR else { continue }
            do {
                scan.chips.append(GPIOChipEntry(path: path, chip: try LibGPIOD.describeChip(at: path)))
            } catch {
                if error == .permissionDenied || error == .notPermitted {
                    scan.denied.append(path)
                    if scan.deniedErrno == nil { scan.deniedErrno = error }
                }
                // Other failures (a chip being removed, a node that is not a GPIO chip) leave the chip out.
            }
        }
        return scan
    }

    /// The device a path names, links resolved; nil when it does not exist.
    static func canonicalPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func list(_ path: String) -> Result<[String], Errno> {
        guard let dir = opendir(path) else { return .failure(Errno(rawValue: errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            names.append(name)
        }
        return .success(names)
    }
}

/// The kernel's GPIO character devices through libgpiod.
public struct LibgpiodBackend: GPIOBackend {
    /// The libgpiod version, e.g. `1.6.3` or `2.2.1`.
    public static var libraryVersion: String { LibGPIOD.libraryVersion }
    /// The libgpiod API this build uses: 1 (libgpiod 1.x, Debian 12 / Raspberry Pi OS bookworm) or 2 (libgpiod
    /// 2.x, Debian 13 / Raspberry Pi OS trixie).
    public static var apiVersion: Int { LibGPIOD.apiVersion }
    /// "libgpiod 2.2.1 (v2 API)", for `--version` and `doctor`.
    public static var summary: String { "libgpiod \(Self.libraryVersion) (v\(Self.apiVersion) API)" }

    public init() {}

    public func input(_ address: LineAddress, _ request: InputRequest) throws(AgentError) -> any GPIOInput {
        do {
            return try GPIOLine.input(address, request)
        } catch {
            throw error.agentError
        }
    }

    public func output(_ address: LineAddress, activeLow: Bool, initial: LineLevel, consumer: String)
        throws(AgentError) -> any GPIOOutput
    {
        do {
            return try GPIOLine.output(address, activeLow: activeLow, initial: initial, consumer: consumer)
        } catch {
            throw error.agentError
        }
    }

    /// Every chip with its label and line names.
    public func describe() throws(AgentError) -> [GPIOChipDescription] {
        let scan = GPIOChips.scan()
        if scan.chips.isEmpty, let code = scan.deniedErrno {
            throw GPIOError(.permissionDenied, "permission denied opening the GPIO chips (\(scan.denied.joined(separator: ", "))): \(GPIOLookup.permissionFix)", errno: code).agentError
        }
        return scan.chips.map(\.chip)
    }
}

/// `CLOCK_MONOTONIC`, the clock the kernel stamps GPIO events with.
public enum MonotonicClock {
    public static func now() -> Duration {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return .seconds(ts.tv_sec) + .nanoseconds(ts.tv_nsec)
    }
}
