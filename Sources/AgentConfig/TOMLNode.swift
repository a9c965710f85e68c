import TOMLKit

/// A parsed TOML value as plain Swift data, so validation does not keep TOMLKit's C++ nodes around.
indirect enum TOMLNode: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case table([String: TOMLNode])
    case array([TOMLNode])
    /// Dates and times, which no key of ours takes.
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
        case .other(let type): return "a \(type)"
        }
    }

    static func from(_ value: any TOMLValueConvertible) -> TOMLNode {
        switch value.type {
        case .table:
            guard let table = value.table else { return .table([:]) }
            return .from(table)
        case .array:
            guard let array = value.array else { return .array([]) }
            return .array(array.map { TOMLNode.from($0) })
        case .string: return .string(value.string ?? "")
        case .int: return .integer(value.int ?? 0)
        case .double: return .float(value.double ?? 0)
        case .bool: return .boolean(value.bool ?? false)
        default: return .other(value.type.description)
        }
    }

    static func from(_ table: TOMLTable) -> TOMLNode {
        var dictionary: [String: TOMLNode] = [:]
        for (key, value) in table { dictionary[key] = .from(value) }
        return .table(dictionary)
    }
}
