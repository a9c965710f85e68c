import TBTOML

/// A parsed TOML value as the validation reads it: tables as dictionaries, dates and times only described (no key
/// of ours takes one). Positions stay in the `TOMLTable` the problems are placed from.
indirect enum TOMLNode: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case table([String: TOMLNode])
    case array([TOMLNode])
    /// Anything else, as messages name it: "an offset date-time (1979-05-27T07:32:00Z)".
    case other(String)

    /// "a string (\"x\")", "an integer (70000)": what was found, for messages.
    var found: String {
        switch self {
        case .string(let s): return "a string (\"\(s)\")"
        case .integer(let i): return "an integer (\(i))"
        case .float(let d): return "a number (\(d))"
        case .boolean(let b): return "a boolean (\(b))"
        case .table: return "a table"
        case .array: return "an array"
        case .other(let description): return description
        }
    }

    static func from(_ value: TOMLValue) -> TOMLNode {
        switch value.kind {
        case .string(let s): return .string(s)
        case .integer(let i):
            // Int is 32 bits on a 32-bit board.
            guard let int = Int(exactly: i) else { return .other("an integer too large for this system (\(i))") }
            return .integer(int)
        case .float(let d): return .float(d)
        case .boolean(let b): return .boolean(b)
        case .offsetDateTime(let dt): return .other("an offset date-time (\(dt))")
        case .localDateTime(let dt): return .other("a local date-time (\(dt))")
        case .localDate(let d): return .other("a local date (\(d))")
        case .localTime(let t): return .other("a local time (\(t))")
        case .array(let items): return .array(items.map { TOMLNode.from($0) })
        case .table(let table): return .from(table)
        }
    }

    static func from(_ table: TOMLTable) -> TOMLNode {
        var dictionary: [String: TOMLNode] = [:]
        for entry in table.entries { dictionary[entry.key] = .from(entry.value) }
        return .table(dictionary)
    }
}

extension TOMLTable {
    /// Where `path` is written: the key (or, for an index, the array element); else its nearest ancestor that is
    /// written (a missing key is reported at its table's header); nil when no part of it is.
    func position(of path: KeyPath) -> TOMLPosition? {
        var found: TOMLPosition? = nil
        var table: TOMLTable? = self
        var value: TOMLValue? = nil
        for segment in path.segments {
            switch segment {
            case .key(let key):
                guard let entry = (table ?? value?.table)?.entry(key) else { return found }
                found = entry.keyPosition
                value = entry.value
            case .index(let index):
                guard let items = value?.array, index >= 0, index < items.count else { return found }
                found = items[index].position
                value = items[index]
            }
            table = nil
        }
        return found
    }
}

extension KeyPath {
    init(_ components: [TOMLPathComponent]) {
        self.init(components.map { component -> Segment in
            switch component {
            case .key(let key): return .key(key)
            case .index(let index): return .index(index)
            }
        })
    }
}
