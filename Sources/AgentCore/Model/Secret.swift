/// A value that must never reach a log, an error message or a process argument: a provision secret, a token,
/// an MQTT password, a private key. Printing it prints a mask.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The clear value, for the one place that needs it (the MQTT CONNECT, the provision request, the store).
    public let revealed: String

    public init(_ value: String) { self.revealed = value }

    public var isEmpty: Bool { self.revealed.isEmpty }
    public var description: String { Self.mask(self.revealed) }
    public var debugDescription: String { "Secret(\(Self.mask(self.revealed)))" }

    /// A secret read from a file or standard input: the text without one trailing line ending, `"\n"` or a
    /// Windows `"\r\n"` (which Swift counts as one `Character`, so `removeLast(2)` would also take the secret's
    /// last character).
    public static func fromText(_ text: String) -> Secret {
        var value = text.unicodeScalars[...]
        if value.last == "\n" {
            value.removeLast()
            if value.last == "\r" { value.removeLast() }
        }
        return Secret(String(value))
    }

    /// `abcd…(20 chars)` would leak a prefix; show only the length class so a person can tell empty from set.
    public static func mask(_ value: String) -> String {
        value.isEmpty ? "(empty)" : "****** (\(value.count) characters)"
    }
}
