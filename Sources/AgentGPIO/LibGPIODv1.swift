#if GPIOD_API_V1
import AgentCore
import CGPIOD
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// Every libgpiod v1 call of the project (libgpiod 1.6, Debian 12 and Raspberry Pi OS bookworm). The v2 twin is
// LibGPIODv2.swift; the interface both provide is described at the top of GPIOLine.swift.

// If the build stops here with "cannot find type 'TBGPIODHeaderIsV1'", the build chose the v1 API but the gpiod.h
// it compiles against is v2's: a manifest decision cached from before libgpiod-dev changed. Run
// `swift package purge-cache` (or delete .build), or force the API with TB_GPIOD_API=2.
private typealias HeaderIsV1 = TBGPIODHeaderIsV1

enum LibGPIOD {
    static let apiVersion = 1

    /// The corresponding C function is `gpiod_version_string`.
    static var libraryVersion: String { gpiod_version_string().map { String(cString: $0) } ?? "unknown" }

    /// Name, label and line names of the chip at `path`.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_name`, `gpiod_chip_label`,
    /// `gpiod_chip_num_lines`, `gpiod_chip_get_line`, `gpiod_line_name` and `gpiod_chip_close`.
    static func describeChip(at path: String) throws(Errno) -> GPIOChipDescription {
        guard let chip = gpiod_chip_open(path) else { throw Errno(rawValue: errno) }
        defer { gpiod_chip_close(chip) }
        let count = Int(gpiod_chip_num_lines(chip))
        let names = (0..<count).map { offset -> String in
            guard let line = gpiod_chip_get_line(chip, UInt32(offset)), let name = gpiod_line_name(line) else {
                return ""
            }
            return String(cString: name)
        }
        return GPIOChipDescription(
            name: gpiod_chip_name(chip).map { String(cString: $0) } ?? "?",
            label: gpiod_chip_label(chip).map { String(cString: $0) } ?? "",
            lineNames: names)
    }

    /// Who holds the line, as the kernel reports it now.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_get_line`, `gpiod_line_update` and
    /// `gpiod_line_consumer`.
    static func consumer(chipPath: String, offset: Int) -> String? {
        guard let chip = gpiod_chip_open(chipPath) else { return nil }
        defer { gpiod_chip_close(chip) }
        guard let line = gpiod_chip_get_line(chip, UInt32(offset)) else { return nil }
        _ = gpiod_line_update(line)
        return gpiod_line_consumer(line).map { String(cString: $0) }
    }

    /// Requests one line. libgpiod v1 has no debounce: `kernelDebounce` is always nil.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_get_line`,
    /// `gpiod_line_request_input_flags`, `gpiod_line_request_both_edges_events_flags`,
    /// `gpiod_line_request_output_flags` and `gpiod_line_event_get_fd`.
    static func request(chipPath: String, offset: Int, _ config: LineConfig) throws(Errno) -> LibGPIODRequest {
        guard let chip = gpiod_chip_open(chipPath) else { throw Errno(rawValue: errno) }
        guard let line = gpiod_chip_get_line(chip, UInt32(offset)) else {
            let code = Errno(rawValue: errno)
            gpiod_chip_close(chip)
            throw code
        }
        var flags: Int32 = config.activeLow ? Int32(GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW) : 0
        let rc: Int32
        var edges = false
        switch config.direction {
        case .input(let bias, let wantEdges, _):
            flags |= Self.biasFlags(bias)
            edges = wantEdges
            rc = edges
                ? gpiod_line_request_both_edges_events_flags(line, config.consumer, flags)
                : gpiod_line_request_input_flags(line, config.consumer, flags)
        case .output(let initial):
            rc = gpiod_line_request_output_flags(line, config.consumer, flags, initial.isHigh ? 1 : 0)
        }
        guard rc == 0 else {
            let code = Errno(rawValue: errno)
            gpiod_chip_close(chip)
            throw code
        }
        let fd = edges ? gpiod_line_event_get_fd(line) : -1
        return LibGPIODRequest(chip: chip, line: line, eventDescriptor: fd)
    }

    private static func biasFlags(_ bias: LineBias) -> Int32 {
        switch bias {
        case .asIs: return 0
        case .disable: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE)
        case .pullUp: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP)
        case .pullDown: return Int32(GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN)
        }
    }
}

/// One requested line with the chip handle it belongs to (v1 lines live inside their chip). Released, then
/// closed, when the last reference goes away.
final class LibGPIODRequest: Sendable {
    // libgpiod handles are plain heap objects owned by this request; every call on them takes `lock`, since the
    // library keeps per-chip state that is not thread-safe (a watcher thread reads edges while others read).
    nonisolated(unsafe) private let chip: OpaquePointer
    nonisolated(unsafe) private let line: OpaquePointer
    private let lock = Mutex(())
    let eventDescriptor: Int32
    var kernelDebounce: Duration? { nil }

    fileprivate init(chip: OpaquePointer, line: OpaquePointer, eventDescriptor: Int32) {
        self.chip = chip
        self.line = line
        self.eventDescriptor = eventDescriptor
    }

    /// The corresponding C functions are `gpiod_line_release` and `gpiod_chip_close`.
    deinit {
        gpiod_line_release(self.line)
        gpiod_chip_close(self.chip)
    }

    /// The corresponding C function is `gpiod_line_get_value`.
    func value() throws(Errno) -> LineLevel {
        let (value, code): (Int32, Errno) = self.lock.withLock { _ in
            let value = gpiod_line_get_value(self.line)
            return (value, Errno(rawValue: errno))
        }
        guard value >= 0 else { throw code }
        return LineLevel(value != 0)
    }

    /// The corresponding C function is `gpiod_line_set_value`.
    func setValue(_ level: LineLevel) throws(Errno) {
        let (rc, code): (Int32, Errno) = self.lock.withLock { _ in
            let rc = gpiod_line_set_value(self.line, level.isHigh ? 1 : 0)
            return (rc, Errno(rawValue: errno))
        }
        guard rc == 0 else { throw code }
    }

    /// The pending edges, at most a few batches, without blocking.
    ///
    /// The corresponding C functions are `gpiod_line_event_wait` (with a zero timeout, to know whether a read
    /// would block) and `gpiod_line_event_read_multiple`.
    func pendingEdges() throws(Errno) -> [RawEdge] {
        var result: [RawEdge] = []
        let capacity = 16
        for _ in 0..<8 {
            let (count, code, batch): (Int32, Errno, [gpiod_line_event]) = self.lock.withLock { _ in
                var zero = timespec(tv_sec: 0, tv_nsec: 0)
                let ready = gpiod_line_event_wait(self.line, &zero)
                guard ready > 0 else { return (ready, Errno(rawValue: errno), []) }
                var events = [gpiod_line_event](repeating: gpiod_line_event(), count: capacity)
                let n = events.withUnsafeMutableBufferPointer {
                    gpiod_line_event_read_multiple(self.line, $0.baseAddress, UInt32(capacity))
                }
                return (n, Errno(rawValue: errno), n > 0 ? Array(events.prefix(Int(n))) : [])
            }
            if count < 0 {
                if result.isEmpty { throw code }
                break
            }
            guard count > 0 else { break }
            for event in batch {
                let level: LineLevel = event.event_type == Int32(GPIOD_LINE_EVENT_RISING_EDGE) ? .high : .low
                result.append(RawEdge(level: level, timestamp: .seconds(event.ts.tv_sec) + .nanoseconds(event.ts.tv_nsec)))
            }
            if Int(count) < capacity { break }
        }
        return result
    }
}
#endif
