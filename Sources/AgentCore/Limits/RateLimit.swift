/// One window of a ThingsBoard rate limit: at most `capacity` tokens per `seconds`.
public struct RateLimitWindow: Sendable, Hashable, CustomStringConvertible {
    public var capacity: Int
    public var seconds: Int

    public init(capacity: Int, seconds: Int) {
        self.capacity = capacity
        self.seconds = seconds
    }

    public var period: Duration { .seconds(self.seconds) }

    /// `cap:seconds`, as ThingsBoard writes it.
    public var description: String { "\(self.capacity):\(self.seconds)" }
}

/// A ThingsBoard rate limit as a tenant profile holds it: `"cap:seconds,cap:seconds"`. Every window applies at once
/// (`TbRateLimits`, one Bucket4j bandwidth per window); a message passes only when every window has the tokens.
///
/// An empty string means no limit, as ThingsBoard reads it (`StringUtils.isEmpty(config) ? ALLOW : …`).
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    /// At most this many windows (ThingsBoard's own profiles use one to three).
    public static let maxWindows = 16
    /// A window's capacity is at most this (ThingsBoard reads a long; a billion is far beyond any real profile).
    public static let maxCapacity = 1_000_000_000
    /// A window is at most a year long.
    public static let maxSeconds = 366 * 86_400
    /// A limit string longer than this is refused unread.
    public static let maxTextLength = 1024

    /// The windows, in the order written (never empty).
    public var windows: [RateLimitWindow]

    public init(windows: [RateLimitWindow]) { self.windows = windows }

    /// The window with the fewest tokens: no single message may cost more than this.
    public var smallestCapacity: Int { self.windows.map(\.capacity).min() ?? 0 }

    /// `"10:1,300:60"`.
    public var description: String { self.windows.map(\.description).joined(separator: ",") }

    /// Parses `"cap:seconds,cap:seconds"`, spaces around numbers allowed. Returns nil for an empty (or blank)
    /// string, which ThingsBoard reads as "no limit".
    ///
    /// - Throws: `RateLimitError` naming the window that is wrong and the form expected.
    public static func parse(_ text: String) throws(RateLimitError) -> RateLimit? {
        guard text.utf8.count <= self.maxTextLength else {
            throw RateLimitError(text: String(text.prefix(40)) + "…", reason: .tooLong)
        }
        if text.allSatisfy(\.isWhitespace) { return nil }
        var windows: [RateLimitWindow] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let window = String(part)
            let pieces = window.split(separator: ":", omittingEmptySubsequences: false)
            guard pieces.count == 2 else {
                throw RateLimitError(text: text, reason: .notAWindow(window.trimmedSpaces))
            }
            guard let capacity = Self.number(pieces[0]), let seconds = Self.number(pieces[1]) else {
                throw RateLimitError(text: text, reason: .notAWindow(window.trimmedSpaces))
            }
            guard (1...self.maxCapacity).contains(capacity) else {
                throw RateLimitError(text: text, reason: .capacityOutOfRange(window.trimmedSpaces))
            }
            guard (1...self.maxSeconds).contains(seconds) else {
                throw RateLimitError(text: text, reason: .secondsOutOfRange(window.trimmedSpaces))
            }
            windows.append(RateLimitWindow(capacity: capacity, seconds: seconds))
            guard windows.count <= self.maxWindows else { throw RateLimitError(text: text, reason: .tooManyWindows) }
        }
        return RateLimit(windows: windows)
    }

    /// A decimal number of at most 10 digits (so that it fits in an Int on a 32-bit board only when in range, and
    /// the range check above says what is wrong), or nil.
    static func number(_ text: Substring) -> Int? {
        let digits = text.trimmedSpaces
        guard !digits.isEmpty, digits.utf8.count <= 10, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
            return nil
        }
        guard let value = Int64(digits) else { return nil }
        return Int(exactly: min(value, Int64(Int32.max)))
    }
}

/// A rate-limit string that is not `"cap:seconds,cap:seconds"`.
public struct RateLimitError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case notAWindow(String)
        case capacityOutOfRange(String)
        case secondsOutOfRange(String)
        case tooManyWindows
        case tooLong
    }

    /// The limit as written (cut when too long).
    public var text: String
    public var reason: Reason

    public init(text: String, reason: Reason) {
        self.text = text
        self.reason = reason
    }

    /// What is wrong and the form expected, e.g. `"10/1" is not a window: write capacity:seconds, like "10:1,300:60"`.
    public var description: String {
        let form = "write capacity:seconds windows separated by commas, like \"10:1,300:60\" (10 per second and 300 per minute)"
        switch self.reason {
        case .notAWindow(let window):
            return "\"\(window)\" in \"\(self.text)\" is not a window; \(form)"
        case .capacityOutOfRange(let window):
            return "\"\(window)\" in \"\(self.text)\": the capacity must be from 1 to \(RateLimit.maxCapacity); \(form)"
        case .secondsOutOfRange(let window):
            return "\"\(window)\" in \"\(self.text)\": the window must be from 1 to \(RateLimit.maxSeconds) seconds; \(form)"
        case .tooManyWindows:
            return "\"\(self.text)\" has more than \(RateLimit.maxWindows) windows; \(form)"
        case .tooLong:
            return "\"\(self.text)\" is longer than \(RateLimit.maxTextLength) characters; \(form)"
        }
    }
}

extension StringProtocol {
    /// Without spaces and tabs at either end.
    var trimmedSpaces: String {
        let scalars = self.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
