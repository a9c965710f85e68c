/// The logical level of a GPIO line, after `active_low` is applied: `.high` means "active".
public enum LineLevel: Sendable, Hashable, CustomStringConvertible {
    case low
    case high

    /// `true` → `.high`.
    public init(_ active: Bool) { self = active ? .high : .low }

    public var isHigh: Bool { self == .high }
    public var inverted: LineLevel { self == .high ? .low : .high }
    /// `0` or `1`, the way the kernel tools and the simulated board's files write it.
    public var digit: String { self == .high ? "1" : "0" }

    /// Parses `0`/`1` (surrounding white space allowed).
    public init?(digit text: some StringProtocol) {
        switch BoardText.trim(text) {
        case "0": self = .low
        case "1": self = .high
        default: return nil
        }
    }

    public var description: String { self.digit }
}

/// A level change seen on a line, with the time it happened on the monotonic clock (`CLOCK_MONOTONIC`, the
/// clock the kernel stamps GPIO events with), as a duration since that clock's origin.
public struct EdgeEvent: Sendable, Hashable {
    public var level: LineLevel
    public var timestamp: Duration

    public init(level: LineLevel, timestamp: Duration) {
        self.level = level
        self.timestamp = timestamp
    }
}

/// How to request an input line.
public struct InputRequest: Sendable, Equatable {
    public var bias: LineBias
    public var activeLow: Bool
    /// Ask the kernel for both-edge events (needed by `GPIOInput.readEdges()`).
    public var edges: Bool
    /// The consumer name other tools (`gpioinfo`) show for the line.
    public var consumer: String
    /// With `edges`: a debounce period to ask the kernel for (libgpiod v2, where the chip or the kernel's own
    /// debouncer can do it); zero asks for none. The agent's software debouncer runs either way: this only spares
    /// it the bounces. `GPIOInput.kernelDebounce` says whether the kernel took it.
    public var debounce: Duration

    public init(
        bias: LineBias = .asIs, activeLow: Bool = false, edges: Bool = false, consumer: String = "tb-agent",
        debounce: Duration = .zero
    ) {
        self.bias = bias
        self.activeLow = activeLow
        self.edges = edges
        self.consumer = consumer
        self.debounce = debounce
    }
}

/// A requested input line. Released when the last reference goes away.
///
/// Edge waiting is left to the caller on purpose: `eventDescriptor` becomes readable (POLLIN) when edges are
/// pending, so one `poll` can wait for the line, a deadline and a wake-up together, and a wait stays cancellable
/// without a polling loop.
public protocol GPIOInput: AnyObject, Sendable {
    /// The line as configured (`GPIO17`, `gpiochip0 line 17`), for messages.
    var address: LineAddress { get }
    /// The current logical level.
    func read() throws(AgentError) -> LineLevel
    /// A file descriptor that polls readable while edge events are pending; -1 when edges were not requested.
    var eventDescriptor: Int32 { get }
    /// The pending edge events, oldest first; empty when none are pending. Does not block.
    ///
    /// When the kernel debounces the line (`kernelDebounce`), it reports an edge once the level has held for the
    /// period; the event is stamped with the time the level settled, as without kernel debounce.
    func readEdges() throws(AgentError) -> [EdgeEvent]
    /// The debounce period the kernel applies to the line's edges, or nil when it applies none (libgpiod v1, a
    /// chip that cannot, or no debounce asked for).
    var kernelDebounce: Duration? { get }
}

extension GPIOInput {
    public var kernelDebounce: Duration? { nil }
}

/// A requested output line (an LED). Released when the last reference goes away.
public protocol GPIOOutput: AnyObject, Sendable {
    var address: LineAddress { get }
    /// Drives the line to the logical `level`.
    func write(_ level: LineLevel) throws(AgentError)
}

/// One chip and its lines, for "not found" messages and `tb-agent gpio list`.
public struct GPIOChipDescription: Sendable, Equatable {
    public var name: String
    public var label: String
    /// Line names by offset; an unnamed line is "".
    public var lineNames: [String]

    public init(name: String, label: String, lineNames: [String]) {
        self.name = name
        self.label = label
        self.lineNames = lineNames
    }
}

/// Where lines come from: the kernel (libgpiod) or a simulated board.
public protocol GPIOBackend: Sendable {
    func input(_ address: LineAddress, _ request: InputRequest) throws(AgentError) -> any GPIOInput
    func output(_ address: LineAddress, activeLow: Bool, initial: LineLevel, consumer: String) throws(AgentError)
        -> any GPIOOutput
    /// What exists, for messages and listings.
    func describe() throws(AgentError) -> [GPIOChipDescription]
}

/// Small text helpers for the files the board's kernel drivers write.
enum BoardText {
    /// The text without leading and trailing white space (spaces, tabs, newlines).
    static func trim(_ text: some StringProtocol) -> Substring {
        let scalars = Substring(text)
        guard let first = scalars.firstIndex(where: { !$0.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return scalars[first...last]
    }
}
