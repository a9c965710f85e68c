import AgentCore
import CGPIOD
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// Every `gpiod_*` call of the project is in this file (libgpiod 1.6, the v1 API of Debian 12 and Raspberry Pi OS
// bookworm; libgpiod 2.x is a different API). Lines are addressed by name or by (chip, offset), never by the
// deprecated sysfs numbers, which move between kernels.

/// An open GPIO chip (`/dev/gpiochipN`). Closed when the last reference goes away.
public final class GPIOChip: Sendable {
    // libgpiod handles are plain heap objects; the chip handle is only read after init, and the calls made on it
    // from several threads (line lookups) happen under `GPIOChip.lock`.
    nonisolated(unsafe) let handle: OpaquePointer
    public let name: String
    public let label: String
    public let lineCount: Int

    /// All libgpiod calls go through this lock: the library keeps per-chip state that is not thread-safe.
    static let lock = Mutex(())

    /// Opens a chip by name (`gpiochip0`), path (`/dev/gpiochip0`), number (`0`) or label (`pinctrl-bcm2711`).
    ///
    /// The corresponding C function is `gpiod_chip_open_lookup`.
    public convenience init(_ identifier: String) throws(GPIOError) {
        let (result, code): (OpaquePointer?, Errno) = Self.lock.withLock { _ in
            let handle = gpiod_chip_open_lookup(identifier)
            return (handle, Errno(rawValue: errno))
        }
        guard let handle = result else {
            if code == .permissionDenied || code == .notPermitted {
                throw GPIOError(.permissionDenied, "permission denied opening GPIO chip '\(identifier)': add the agent's user to the `gpio` group (`sudo usermod -aG gpio USER`, then log in again) or run it as root", errno: code)
            }
            let chips = (try? LibgpiodBackend.chipDescriptions()) ?? []
            throw GPIOError(.chipNotFound, "GPIO chip '\(identifier)' not found (\(code)); \(LibgpiodBackend.listing(chips))", errno: code)
        }
        self.init(adopting: handle)
    }

    /// Takes ownership of an open chip handle.
    init(adopting handle: OpaquePointer) {
        self.handle = handle
        self.name = gpiod_chip_name(handle).map { String(cString: $0) } ?? "?"
        self.label = gpiod_chip_label(handle).map { String(cString: $0) } ?? ""
        self.lineCount = Int(gpiod_chip_num_lines(handle))
    }

    deinit { gpiod_chip_close(self.handle) }

    /// The names of the chip's lines by offset ("" for an unnamed line).
    ///
    /// The corresponding C functions are `gpiod_chip_get_line` and `gpiod_line_name`.
    public func lineNames() -> [String] {
        Self.lock.withLock { _ in
            (0..<self.lineCount).map { offset in
                guard let line = gpiod_chip_get_line(self.handle, UInt32(offset)),
                      let name = gpiod_line_name(line)
                else { return "" }
                return String(cString: name)
            }
        }
    }

    var chipDescription: GPIOChipDescription {
        GPIOChipDescription(name: self.name, label: self.label, lineNames: self.lineNames())
    }
}

/// A requested GPIO line: an input (optionally with both-edge events) or an output. Released when the last
/// reference goes away.
public final class GPIOLine: GPIOInput, GPIOOutput, Sendable {
    // The line handle belongs to `chip`, which this object keeps open; every call on it takes `GPIOChip.lock`.
    nonisolated(unsafe) private let handle: OpaquePointer
    private let chip: GPIOChip
    public let address: LineAddress
    public let offset: Int
    public let eventDescriptor: Int32

    private init(handle: OpaquePointer, chip: GPIOChip, address: LineAddress, eventDescriptor: Int32) {
        self.handle = handle
        self.chip = chip
        self.address = address
        self.offset = Int(gpiod_line_offset(handle))
        self.eventDescriptor = eventDescriptor
    }

    deinit {
        GPIOChip.lock.withLock { _ in gpiod_line_release(self.handle) }
    }

    /// Finds a line by name or by chip and offset, and the chip it is on.
    ///
    /// The corresponding C functions are `gpiod_line_find`, `gpiod_line_get_chip` and `gpiod_chip_get_line`.
    static func find(_ address: LineAddress) throws(GPIOError) -> (OpaquePointer, GPIOChip) {
        switch address {
        case .name(let name):
            let (found, code): (OpaquePointer?, Errno) = GPIOChip.lock.withLock { _ in
                let line = gpiod_line_find(name)
                return (line, Errno(rawValue: errno))
            }
            guard let line = found, let chipHandle = gpiod_line_get_chip(line) else {
                if code == .permissionDenied || code == .notPermitted {
                    throw GPIOError(.permissionDenied, "permission denied opening the GPIO chips (/dev/gpiochip*) to find line '\(name)': add the agent's user to the `gpio` group (`sudo usermod -aG gpio USER`, then log in again) or run it as root", errno: code)
                }
                let chips = (try? LibgpiodBackend.chipDescriptions()) ?? []
                throw GPIOError(.lineNotFound, "GPIO line '\(name)' not found; \(LibgpiodBackend.listing(chips))", errno: code)
            }
            return (line, GPIOChip(adopting: chipHandle))
        case .chipOffset(let chipName, let offset):
            let chip = try GPIOChip(chipName)
            guard offset >= 0, offset < chip.lineCount else {
                throw GPIOError(.lineNotFound, "GPIO chip '\(chipName)' (\(chip.name), label '\(chip.label)') has lines 0…\(chip.lineCount - 1); there is no line \(offset)")
            }
            let (found, code): (OpaquePointer?, Errno) = GPIOChip.lock.withLock { _ in
                let line = gpiod_chip_get_line(chip.handle, UInt32(offset))
                return (line, Errno(rawValue: errno))
            }
            guard let line = found else {
                throw GPIOError(.lineNotFound, "GPIO chip '\(chipName)' has no line \(offset) (\(code))", errno: code)
            }
            return (line, chip)
        }
    }

    /// Requests an input line with bias and active-low, and both-edge events when `request.edges` is set.
    ///
    /// The corresponding C functions are `gpiod_line_request_input_flags` and
    /// `gpiod_line_request_both_edges_events_flags`.
    public static func input(_ address: LineAddress, _ request: InputRequest) throws(GPIOError) -> GPIOLine {
        let (line, chip) = try Self.find(address)
        var flags = Self.biasFlags(request.bias)
        if request.activeLow { flags |= Int32(GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW) }
        let (result, code): (Int32, Errno) = GPIOChip.lock.withLock { _ in
            let rc = request.edges
                ? gpiod_line_request_both_edges_events_flags(line, request.consumer, flags)
                : gpiod_line_request_input_flags(line, request.consumer, flags)
            return (rc, Errno(rawValue: errno))
        }
        guard result == 0 else {
            throw Self.requestError(line: line, address: address, bias: request.bias, code: code)
        }
        let fd = request.edges ? GPIOChip.lock.withLock { _ in gpiod_line_event_get_fd(line) } : -1
        return GPIOLine(handle: line, chip: chip, address: address, eventDescriptor: fd)
    }

    /// Requests an output line (an LED) driven to `initial`.
    ///
    /// The corresponding C function is `gpiod_line_request_output_flags`.
    public static func output(_ address: LineAddress, activeLow: Bool, initial: LineLevel, consumer: String)
        throws(GPIOError) -> GPIOLine
    {
        let (line, chip) = try Self.find(address)
        let flags: Int32 = activeLow ? Int32(GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW) : 0
        let (result, code): (Int32, Errno) = GPIOChip.lock.withLock { _ in
            let rc = gpiod_line_request_output_flags(line, consumer, flags, initial.isHigh ? 1 : 0)
            return (rc, Errno(rawValue: errno))
        }
        guard result == 0 else {
            throw Self.requestError(line: line, address: address, bias: .asIs, code: code)
        }
        return GPIOLine(handle: line, chip: chip, address: address, eventDescriptor: -1)
    }

    private static func biasFlags(_ bias: LineBias) -> Int32 {
        switch bias {
        case .asIs: return 0
        case .disable: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE)
        case .pullUp: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP)
        case .pullDown: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN)
        }
    }

    /// Turns a failed request into a message that names the line, the cause and the fix.
    ///
    /// The corresponding C functions are `gpiod_line_update` and `gpiod_line_consumer`.
    private static func requestError(line: OpaquePointer, address: LineAddress, bias: LineBias, code: Errno)
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
            let consumer: String? = GPIOChip.lock.withLock { _ in
                _ = gpiod_line_update(line)
                return gpiod_line_consumer(line).map { String(cString: $0) }
            }
            let who = consumer.map { "'\($0)'" } ?? "another program or a kernel driver"
            return GPIOError(.lineBusy, "GPIO line \(address) is busy: used by \(who); stop that program (or remove the overlay that claims the pin) or choose another line", errno: code)
        case .permissionDenied, .notPermitted:
            return GPIOError(.permissionDenied, "permission denied requesting GPIO line \(address): add the agent's user to the `gpio` group (`sudo usermod -aG gpio USER`, then log in again) or run it as root", errno: code)
        default:
            return GPIOError(.requestFailed, "GPIO line \(address) could not be requested: \(code)", errno: code)
        }
    }

    /// The current logical level.
    ///
    /// The corresponding C function is `gpiod_line_get_value`.
    public func read() throws(AgentError) -> LineLevel {
        let (value, code): (Int32, Errno) = GPIOChip.lock.withLock { _ in
            let value = gpiod_line_get_value(self.handle)
            return (value, Errno(rawValue: errno))
        }
        guard value >= 0 else {
            throw GPIOError(.ioFailed, "reading GPIO line \(self.address) failed: \(code)", errno: code).agentError
        }
        return LineLevel(value != 0)
    }

    /// Drives the line.
    ///
    /// The corresponding C function is `gpiod_line_set_value`.
    public func write(_ level: LineLevel) throws(AgentError) {
        let (result, code): (Int32, Errno) = GPIOChip.lock.withLock { _ in
            let rc = gpiod_line_set_value(self.handle, level.isHigh ? 1 : 0)
            return (rc, Errno(rawValue: errno))
        }
        guard result == 0 else {
            throw GPIOError(.ioFailed, "setting GPIO line \(self.address) failed: \(code)", errno: code).agentError
        }
    }

    /// The pending edge events, without blocking.
    ///
    /// The corresponding C functions are `gpiod_line_event_wait` (with a zero timeout, to know whether a read
    /// would block) and `gpiod_line_event_read_multiple`.
    public func readEdges() throws(AgentError) -> [EdgeEvent] {
        guard self.eventDescriptor >= 0 else { return [] }
        var result: [EdgeEvent] = []
        let capacity = 16
        for _ in 0..<8 {
            let (count, code, batch): (Int32, Errno, [gpiod_line_event]) = GPIOChip.lock.withLock { _ in
                var zero = timespec(tv_sec: 0, tv_nsec: 0)
                let ready = gpiod_line_event_wait(self.handle, &zero)
                guard ready > 0 else { return (ready, Errno(rawValue: errno), []) }
                var events = [gpiod_line_event](repeating: gpiod_line_event(), count: capacity)
                let n = events.withUnsafeMutableBufferPointer {
                    gpiod_line_event_read_multiple(self.handle, $0.baseAddress, UInt32(capacity))
                }
                return (n, Errno(rawValue: errno), n > 0 ? Array(events.prefix(Int(n))) : [])
            }
            if count < 0 {
                if code == .interrupted || code == .resourceTemporarilyUnavailable { break }
                throw GPIOError(.ioFailed, "reading events of GPIO line \(self.address) failed: \(code)", errno: code).agentError
            }
            guard count > 0 else { break }
            let now = MonotonicClock.now()
            for event in batch {
                var stamp = Duration.seconds(event.ts.tv_sec) + .nanoseconds(event.ts.tv_nsec)
                // Kernels before 5.7 stamped v1 events with the wall clock: keep such stamps off the monotonic
                // timeline the debouncer works on.
                if stamp > now + .seconds(3600) || stamp < now - .seconds(3600) { stamp = now }
                let level: LineLevel = event.event_type == Int32(GPIOD_LINE_EVENT_RISING_EDGE) ? .high : .low
                result.append(EdgeEvent(level: level, timestamp: stamp))
            }
            if Int(count) < capacity { break }
        }
        return result
    }
}

/// The kernel's GPIO character devices through libgpiod.
public struct LibgpiodBackend: GPIOBackend {
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

    public func describe() throws(AgentError) -> [GPIOChipDescription] {
        do {
            return try Self.chipDescriptions()
        } catch {
            throw error.agentError
        }
    }

    /// Every chip with its label and line names.
    ///
    /// The corresponding C functions are `gpiod_chip_iter_new`, `gpiod_chip_iter_next_noclose` and
    /// `gpiod_chip_iter_free_noclose`.
    static func chipDescriptions() throws(GPIOError) -> [GPIOChipDescription] {
        let (chips, code): ([GPIOChip]?, Errno) = GPIOChip.lock.withLock { _ in
            guard let iterator = gpiod_chip_iter_new() else { return (nil, Errno(rawValue: errno)) }
            var chips: [GPIOChip] = []
            while let handle = gpiod_chip_iter_next_noclose(iterator) {
                chips.append(GPIOChip(adopting: handle))
            }
            gpiod_chip_iter_free_noclose(iterator)
            return (chips, Errno(rawValue: 0))
        }
        guard let chips else {
            if code == .permissionDenied || code == .notPermitted {
                throw GPIOError(.permissionDenied, "permission denied opening the GPIO chips (/dev/gpiochip*): add the agent's user to the `gpio` group (`sudo usermod -aG gpio USER`, then log in again) or run it as root", errno: code)
            }
            throw GPIOError(.chipNotFound, "the GPIO chips could not be listed: \(code)", errno: code)
        }
        return chips.map(\.chipDescription)
    }

    /// "chips: gpiochip0 [pinctrl-bcm2711] lines GPIO0, GPIO1, …" or what to do when there are none.
    static func listing(_ chips: [GPIOChipDescription]) -> String {
        guard !chips.isEmpty else {
            return "this machine has no GPIO chips (/dev/gpiochip*); to run without hardware set `[gpio] backend = \"simulated\"`"
        }
        let parts = chips.map { chip -> String in
            let named = chip.lineNames.filter { !$0.isEmpty }
            let shown = named.prefix(64).joined(separator: ", ")
            let more = named.count > 64 ? ", …" : ""
            let names = named.isEmpty ? "no named lines (address them by chip and offset 0…\(chip.lineNames.count - 1))" : "lines \(shown)\(more)"
            return "\(chip.name) [\(chip.label)] \(chip.lineNames.count) lines: \(names)"
        }
        return "chips: " + parts.joined(separator: "; ")
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
