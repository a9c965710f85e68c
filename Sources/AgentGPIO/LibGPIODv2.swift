#if GPIOD_API_V2
import AgentCore
import CGPIOD
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// Every libgpiod v2 call of the project (libgpiod 2.x, Debian 13 and Raspberry Pi OS trixie). The v1 twin is
// LibGPIODv1.swift; the interface both provide is described at the top of GPIOLine.swift.

// If the build stops here with "cannot find type 'TBGPIODHeaderIsV2'", the build chose the v2 API but the gpiod.h
// it compiles against is v1's: a manifest decision cached from before libgpiod-dev changed. Run
// `swift package purge-cache` (or delete .build), or force the API with TB_GPIOD_API=1.
private typealias HeaderIsV2 = TBGPIODHeaderIsV2

enum LibGPIOD {
    static let apiVersion = 2

    /// The corresponding C function is `gpiod_api_version`.
    static var libraryVersion: String { gpiod_api_version().map { String(cString: $0) } ?? "unknown" }

    /// Name, label and line names of the chip at `path`.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_get_info`, `gpiod_chip_info_get_name`,
    /// `gpiod_chip_info_get_label`, `gpiod_chip_info_get_num_lines`, `gpiod_chip_get_line_info`,
    /// `gpiod_line_info_get_name` and the matching `_free`/`_close` functions.
    static func describeChip(at path: String) throws(Errno) -> GPIOChipDescription {
        guard let chip = gpiod_chip_open(path) else { throw Errno(rawValue: errno) }
        defer { gpiod_chip_close(chip) }
        guard let info = gpiod_chip_get_info(chip) else { throw Errno(rawValue: errno) }
        defer { gpiod_chip_info_free(info) }
        let count = Int(gpiod_chip_info_get_num_lines(info))
        let names = (0..<count).map { offset -> String in
            guard let line = gpiod_chip_get_line_info(chip, UInt32(offset)) else { return "" }
            defer { gpiod_line_info_free(line) }
            return gpiod_line_info_get_name(line).map { String(cString: $0) } ?? ""
        }
        return GPIOChipDescription(
            name: gpiod_chip_info_get_name(info).map { String(cString: $0) } ?? "?",
            label: gpiod_chip_info_get_label(info).map { String(cString: $0) } ?? "",
            lineNames: names)
    }

    /// Who holds the line, as the kernel reports it now.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_get_line_info` and
    /// `gpiod_line_info_get_consumer`.
    static func consumer(chipPath: String, offset: Int) -> String? {
        guard let chip = gpiod_chip_open(chipPath) else { return nil }
        defer { gpiod_chip_close(chip) }
        guard let info = gpiod_chip_get_line_info(chip, UInt32(offset)) else { return nil }
        defer { gpiod_line_info_free(info) }
        guard gpiod_line_info_is_used(info) else { return nil }
        return gpiod_line_info_get_consumer(info).map { String(cString: $0) }
    }

    /// Requests one line. An input with edges and a debounce period asks the kernel to debounce; a chip that
    /// cannot (no hardware debounce and no interrupt for the kernel's own debouncer) gets the request again
    /// without it, and the software debouncer does the work alone.
    ///
    /// The corresponding C functions are `gpiod_chip_open`, `gpiod_chip_request_lines`,
    /// `gpiod_chip_get_line_info` and `gpiod_line_info_get_debounce_period_us` (what the kernel applied).
    static func request(chipPath: String, offset: Int, _ config: LineConfig) throws(Errno) -> LibGPIODRequest {
        guard let chip = gpiod_chip_open(chipPath) else { throw Errno(rawValue: errno) }
        // A v2 request does not need its chip open: the chip is closed once the lines are requested.
        defer { gpiod_chip_close(chip) }
        var debounce = Duration.zero
        if case .input(_, true, let period) = config.direction { debounce = period }
        var result = Self.request(chip, offset: offset, config, debounce: debounce)
        if case .failure(let code) = result, debounce > .zero,
           code != .resourceBusy, code != .permissionDenied, code != .notPermitted
        {
            result = Self.request(chip, offset: offset, config, debounce: .zero)
        }
        let request: OpaquePointer
        switch result {
        case .success(let r): request = r
        case .failure(let code): throw code
        }
        var applied: Duration? = nil
        if debounce > .zero, let info = gpiod_chip_get_line_info(chip, UInt32(offset)) {
            let us = gpiod_line_info_get_debounce_period_us(info)
            gpiod_line_info_free(info)
            if us > 0 { applied = .microseconds(Int64(us)) }
        }
        let edges: Bool
        if case .input(_, true, _) = config.direction { edges = true } else { edges = false }
        return try LibGPIODRequest(request: request, offset: offset, edges: edges, kernelDebounce: applied)
    }

    /// One `gpiod_chip_request_lines` with the settings of `config` and the debounce period given.
    ///
    /// The corresponding C functions are `gpiod_line_settings_new`, `gpiod_line_settings_set_direction`,
    /// `gpiod_line_settings_set_bias`, `gpiod_line_settings_set_active_low`,
    /// `gpiod_line_settings_set_edge_detection`, `gpiod_line_settings_set_event_clock`,
    /// `gpiod_line_settings_set_debounce_period_us`, `gpiod_line_settings_set_output_value`,
    /// `gpiod_line_config_new`, `gpiod_line_config_add_line_settings`, `gpiod_request_config_new`,
    /// `gpiod_request_config_set_consumer`, `gpiod_chip_request_lines` and the matching `_free` functions.
    private static func request(_ chip: OpaquePointer, offset: Int, _ config: LineConfig, debounce: Duration)
        -> Result<OpaquePointer, Errno>
    {
        guard let settings = gpiod_line_settings_new() else { return .failure(Errno(rawValue: errno)) }
        defer { gpiod_line_settings_free(settings) }
        gpiod_line_settings_set_active_low(settings, config.activeLow)
        switch config.direction {
        case .input(let bias, let edges, _):
            _ = gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_INPUT)
            _ = gpiod_line_settings_set_bias(settings, Self.bias(bias))
            if edges {
                _ = gpiod_line_settings_set_edge_detection(settings, GPIOD_LINE_EDGE_BOTH)
                _ = gpiod_line_settings_set_event_clock(settings, GPIOD_LINE_CLOCK_MONOTONIC)
                if debounce > .zero {
                    let (seconds, attoseconds) = debounce.components
                    let us = max(1, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
                    gpiod_line_settings_set_debounce_period_us(settings, UInt(clamping: us))
                }
            }
        case .output(let initial):
            _ = gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_OUTPUT)
            _ = gpiod_line_settings_set_output_value(
                settings, initial.isHigh ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE)
        }
        guard let lineConfig = gpiod_line_config_new() else { return .failure(Errno(rawValue: errno)) }
        defer { gpiod_line_config_free(lineConfig) }
        var offsets = [UInt32(offset)]
        guard gpiod_line_config_add_line_settings(lineConfig, &offsets, 1, settings) == 0 else {
            return .failure(Errno(rawValue: errno))
        }
        guard let requestConfig = gpiod_request_config_new() else { return .failure(Errno(rawValue: errno)) }
        defer { gpiod_request_config_free(requestConfig) }
        gpiod_request_config_set_consumer(requestConfig, config.consumer)
        guard let request = gpiod_chip_request_lines(chip, requestConfig, lineConfig) else {
            return .failure(Errno(rawValue: errno))
        }
        return .success(request)
    }

    private static func bias(_ bias: LineBias) -> gpiod_line_bias {
        switch bias {
        case .asIs: return GPIOD_LINE_BIAS_AS_IS
        case .disable: return GPIOD_LINE_BIAS_DISABLED
        case .pullUp: return GPIOD_LINE_BIAS_PULL_UP
        case .pullDown: return GPIOD_LINE_BIAS_PULL_DOWN
        }
    }
}

/// One line request (a v2 request owns its file descriptor; the chip is not needed after the request). Released
/// when the last reference goes away.
final class LibGPIODRequest: Sendable {
    // The request and the event buffer are plain heap objects owned by this object; libgpiod v2 objects are not
    // thread-safe, so every call on them takes `lock` (a watcher thread reads edges while others read the level).
    nonisolated(unsafe) private let request: OpaquePointer
    nonisolated(unsafe) private let buffer: OpaquePointer?
    private let lock = Mutex(())
    private let offset: UInt32
    let eventDescriptor: Int32
    let kernelDebounce: Duration?
    private static let capacity = 16

    /// The corresponding C functions are `gpiod_line_request_get_fd` and `gpiod_edge_event_buffer_new`.
    fileprivate init(request: OpaquePointer, offset: Int, edges: Bool, kernelDebounce: Duration?) throws(Errno) {
        self.request = request
        self.offset = UInt32(offset)
        self.kernelDebounce = kernelDebounce
        if edges {
            self.eventDescriptor = gpiod_line_request_get_fd(request)
            guard let buffer = gpiod_edge_event_buffer_new(Self.capacity) else {
                let code = Errno(rawValue: errno)
                gpiod_line_request_release(request)
                throw code
            }
            self.buffer = buffer
        } else {
            self.eventDescriptor = -1
            self.buffer = nil
        }
    }

    /// The corresponding C functions are `gpiod_line_request_release` and `gpiod_edge_event_buffer_free`.
    deinit {
        gpiod_line_request_release(self.request)
        if let buffer = self.buffer { gpiod_edge_event_buffer_free(buffer) }
    }

    /// The corresponding C function is `gpiod_line_request_get_value`.
    func value() throws(Errno) -> LineLevel {
        let (value, code): (gpiod_line_value, Errno) = self.lock.withLock { _ in
            let value = gpiod_line_request_get_value(self.request, self.offset)
            return (value, Errno(rawValue: errno))
        }
        guard value != GPIOD_LINE_VALUE_ERROR else { throw code }
        return LineLevel(value == GPIOD_LINE_VALUE_ACTIVE)
    }

    /// The corresponding C function is `gpiod_line_request_set_value`.
    func setValue(_ level: LineLevel) throws(Errno) {
        let (rc, code): (Int32, Errno) = self.lock.withLock { _ in
            let rc = gpiod_line_request_set_value(
                self.request, self.offset, level.isHigh ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE)
            return (rc, Errno(rawValue: errno))
        }
        guard rc == 0 else { throw code }
    }

    /// The pending edges, at most a few batches, without blocking.
    ///
    /// The corresponding C functions are `gpiod_line_request_wait_edge_events` (with a zero timeout, to know
    /// whether a read would block), `gpiod_line_request_read_edge_events`, `gpiod_edge_event_buffer_get_event`,
    /// `gpiod_edge_event_get_event_type` and `gpiod_edge_event_get_timestamp_ns`.
    func pendingEdges() throws(Errno) -> [RawEdge] {
        guard let buffer = self.buffer else { return [] }
        var result: [RawEdge] = []
        for _ in 0..<8 {
            let (count, code, batch): (Int32, Errno, [RawEdge]) = self.lock.withLock { _ in
                let ready = gpiod_line_request_wait_edge_events(self.request, 0)
                guard ready > 0 else { return (ready, Errno(rawValue: errno), []) }
                let n = gpiod_line_request_read_edge_events(self.request, buffer, Self.capacity)
                guard n > 0 else { return (n, Errno(rawValue: errno), []) }
                var batch: [RawEdge] = []
                for index in 0..<Int(n) {
                    guard let event = gpiod_edge_event_buffer_get_event(buffer, UInt(index)) else { continue }
                    let rising = gpiod_edge_event_get_event_type(event) == GPIOD_EDGE_EVENT_RISING_EDGE
                    let ns = gpiod_edge_event_get_timestamp_ns(event)
                    batch.append(RawEdge(level: rising ? .high : .low, timestamp: .nanoseconds(Int64(clamping: ns))))
                }
                return (n, Errno(rawValue: 0), batch)
            }
            if count < 0 {
                if result.isEmpty { throw code }
                break
            }
            guard count > 0 else { break }
            result += batch
            if Int(count) < Self.capacity { break }
        }
        return result
    }
}
#endif
