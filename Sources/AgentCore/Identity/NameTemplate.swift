/// `[device] name_template`: literal text with placeholders `{serial}`, `{mac}`, `{machine_id}`, `{hostname}` and
/// `{id}`. `{{` and `}}` stand for literal braces.
public struct NameTemplate: Sendable, Equatable {
    public enum Placeholder: String, Sendable, Equatable, CaseIterable {
        case serial, mac
        case machineId = "machine_id"
        case hostname, id

        /// The source a placeholder reads; nil for `{id}`, which picks one.
        public var source: IdentitySource? {
            switch self {
            case .serial: return .serial
            case .mac: return .mac
            case .machineId: return .machineId
            case .hostname: return .hostname
            case .id: return nil
            }
        }
    }

    public enum Part: Sendable, Equatable {
        case literal(String)
        case placeholder(Placeholder)
    }

    /// A template that could not be parsed, with a message saying what to change.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        /// The placeholder name that was not recognized, for a "did you mean" suggestion.
        public let unknownPlaceholder: String?
        public var description: String { self.message }
    }

    public let text: String
    public let parts: [Part]

    /// The placeholders in order of appearance (with repeats).
    public var placeholders: [Placeholder] {
        self.parts.compactMap { part in
            if case .placeholder(let p) = part { return p }
            return nil
        }
    }

    public static let validPlaceholders = Placeholder.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")

    public init(parsing text: String) throws(ParseError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var index = text.startIndex
        while index < text.endIndex {
            let ch = text[index]
            let next = text.index(after: index)
            if ch == "{" {
                if next < text.endIndex, text[next] == "{" {
                    literal.append("{")
                    index = text.index(after: next)
                    continue
                }
                guard let close = text[next...].firstIndex(of: "}") else {
                    throw ParseError(
                        message: "an opening brace has no closing brace; write placeholders as {id} and a literal brace as {{",
                        unknownPlaceholder: nil)
                }
                let name = String(text[next..<close])
                guard let placeholder = Placeholder(rawValue: name) else {
                    throw ParseError(
                        message: "unknown placeholder {\(name)}; the placeholders are \(Self.validPlaceholders)",
                        unknownPlaceholder: name)
                }
                if !literal.isEmpty {
                    parts.append(.literal(literal))
                    literal = ""
                }
                parts.append(.placeholder(placeholder))
                index = text.index(after: close)
            } else if ch == "}" {
                guard next < text.endIndex, text[next] == "}" else {
                    throw ParseError(
                        message: "a closing brace has no opening brace; write a literal brace as }}",
                        unknownPlaceholder: nil)
                }
                literal.append("}")
                index = text.index(after: next)
            } else {
                literal.append(ch)
                index = next
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }
}

/// What ThingsBoard accepts as a device name.
public enum DeviceName {
    public static let maximumLength = 255

    /// Nil when `name` is a valid device name, else why not. The name is expected already trimmed.
    public static func problem(with name: String) -> String? {
        if name.allSatisfy({ $0.isWhitespace }) { return "the name is blank" }
        if name.count > self.maximumLength {
            return "the name has \(name.count) characters; ThingsBoard allows at most \(self.maximumLength)"
        }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "the name contains a control character (a newline or tab)"
        }
        return nil
    }
}
