/// Where something is written in a TOML document: 1-based line and column. Columns count Unicode scalars (a
/// byte order mark at the start of the text is not counted); a CRLF line ending is one line break.
public struct TOMLPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `LINE:COLUMN`.
    public var description: String { "\(self.line):\(self.column)" }

    public static func < (a: TOMLPosition, b: TOMLPosition) -> Bool { (a.line, a.column) < (b.line, b.column) }
}

/// One step of a path into a document: a key of a table, or an index into an array.
public enum TOMLPathComponent: Sendable, Hashable {
    case key(String)
    case index(Int)
}

/// A local date: `1979-05-27`.
public struct TOMLDate: Sendable, Hashable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        TOMLDate.digits(self.year, 4) + "-" + TOMLDate.digits(self.month, 2) + "-" + TOMLDate.digits(self.day, 2)
    }

    static func digits(_ value: Int, _ count: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, count - text.count)) + text
    }
}

/// A local time: `07:32:00.999`. The fractional seconds are kept as written (their digits), so no precision is lost.
public struct TOMLTime: Sendable, Hashable, CustomStringConvertible {
    public var hour: Int
    public var minute: Int
    public var second: Int
    /// The digits after the decimal point, as written (`"999"`), or empty.
    public var fraction: String

    public init(hour: Int, minute: Int, second: Int, fraction: String = "") {
        self.hour = hour
        self.minute = minute
        self.second = second
        self.fraction = fraction
    }

    /// The fractional seconds in nanoseconds (digits past the ninth are dropped).
    public var nanosecond: Int {
        var value = 0
        var count = 0
        for digit in self.fraction.utf8 where count < 9 {
            value = value * 10 + Int(digit &- UInt8(ascii: "0"))
            count += 1
        }
        while count < 9 {
            value *= 10
            count += 1
        }
        return value
    }

    /// `HH:MM:SS` or `HH:MM:SS.fraction`.
    public var description: String {
        let base = TOMLDate.digits(self.hour, 2) + ":" + TOMLDate.digits(self.minute, 2) + ":"
            + TOMLDate.digits(self.second, 2)
        return self.fraction.isEmpty ? base : base + "." + self.fraction
    }
}

/// A date with a time, and with a UTC offset when it is an offset date-time.
public struct TOMLDateTime: Sendable, Hashable, CustomStringConvertible {
    public var date: TOMLDate
    public var time: TOMLTime
    /// Minutes east of UTC (`Z` is 0); nil for a local date-time.
    public var offsetMinutes: Int?

    public init(date: TOMLDate, time: TOMLTime, offsetMinutes: Int?) {
        self.date = date
        self.time = time
        self.offsetMinutes = offsetMinutes
    }

    /// RFC 3339: `1979-05-27T07:32:00Z`, `1979-05-27T00:32:00.999-07:00`, or `1979-05-27T07:32:00` when local.
    public var description: String {
        var text = self.date.description + "T" + self.time.description
        guard let offset = self.offsetMinutes else { return text }
        if offset == 0 { return text + "Z" }
        let magnitude = offset < 0 ? -offset : offset
        text += offset < 0 ? "-" : "+"
        return text + TOMLDate.digits(magnitude / 60, 2) + ":" + TOMLDate.digits(magnitude % 60, 2)
    }
}

/// A value of a TOML document, with the position where it is written.
///
/// A table opened by a header (`[server]`) or by a dotted key (`server.port = 1`) is positioned at the key that
/// created it; an array of tables (`[[sensors]]`) at its first header's key, and each of its tables at its own
/// header's key.
public struct TOMLValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// A date-time with an offset (`offsetMinutes` is set).
        case offsetDateTime(TOMLDateTime)
        /// A date-time without an offset (`offsetMinutes` is nil).
        case localDateTime(TOMLDateTime)
        case localDate(TOMLDate)
        case localTime(TOMLTime)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    public var kind: Kind
    public var position: TOMLPosition

    public init(_ kind: Kind, at position: TOMLPosition) {
        self.kind = kind
        self.position = position
    }

    /// "string", "integer", "float", "boolean", "offset date-time", "local date-time", "local date", "local time",
    /// "array", "table": for messages.
    public var typeName: String {
        switch self.kind {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .offsetDateTime: return "offset date-time"
        case .localDateTime: return "local date-time"
        case .localDate: return "local date"
        case .localTime: return "local time"
        case .array: return "array"
        case .table: return "table"
        }
    }

    public var string: String? {
        if case .string(let value) = self.kind { return value }
        return nil
    }

    public var integer: Int64? {
        if case .integer(let value) = self.kind { return value }
        return nil
    }

    public var float: Double? {
        if case .float(let value) = self.kind { return value }
        return nil
    }

    public var boolean: Bool? {
        if case .boolean(let value) = self.kind { return value }
        return nil
    }

    public var array: [TOMLValue]? {
        if case .array(let value) = self.kind { return value }
        return nil
    }

    public var table: TOMLTable? {
        if case .table(let value) = self.kind { return value }
        return nil
    }

    /// The value at `path` below this one, if there is one.
    public func value(at path: some Collection<TOMLPathComponent>) -> TOMLValue? {
        var current = self
        for component in path {
            switch (component, current.kind) {
            case (.key(let key), .table(let table)):
                guard let next = table[key] else { return nil }
                current = next
            case (.index(let index), .array(let items)):
                guard index >= 0, index < items.count else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}

/// A TOML table: its keys in the order they were written, each with the position of the key and its value.
public struct TOMLTable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        /// Where the key is written (for a table opened by a header, the header's last key).
        public var keyPosition: TOMLPosition
        public var value: TOMLValue

        public init(key: String, keyPosition: TOMLPosition, value: TOMLValue) {
            self.key = key
            self.keyPosition = keyPosition
            self.value = value
        }
    }

    /// The entries in the order their keys first appear in the document.
    public private(set) var entries: [Entry] = []
    private var indexByKey: [ExactKey: Int] = [:]

    public init() {}

    /// A table of `entries`; a later entry with the same key replaces the earlier one in place.
    public init(_ entries: [Entry]) {
        for entry in entries { self.set(entry) }
    }

    public var count: Int { self.entries.count }
    public var isEmpty: Bool { self.entries.isEmpty }
    public var keys: [String] { self.entries.map(\.key) }

    public subscript(key: String) -> TOMLValue? {
        guard let index = self.indexByKey[ExactKey(key)] else { return nil }
        return self.entries[index].value
    }

    /// The value at `path` (which starts with a key of this table), if there is one.
    public func value(at path: some Collection<TOMLPathComponent>) -> TOMLValue? {
        guard case .key(let key)? = path.first, let value = self[key] else { return nil }
        return value.value(at: path.dropFirst())
    }

    public func entry(_ key: String) -> Entry? {
        guard let index = self.indexByKey[ExactKey(key)] else { return nil }
        return self.entries[index]
    }

    /// Adds `entry`, or replaces the entry with its key (keeping that entry's place).
    public mutating func set(_ entry: Entry) {
        if let index = self.indexByKey[ExactKey(entry.key)] {
            self.entries[index] = entry
        } else {
            self.indexByKey[ExactKey(entry.key)] = self.entries.count
            self.entries.append(entry)
        }
    }

    public static func == (a: TOMLTable, b: TOMLTable) -> Bool { a.entries == b.entries }
}

/// A key compared by its UTF-8 bytes, as TOML compares keys: Swift's `String` equality would take "é" written as
/// one scalar and as "e" with a combining accent for the same key.
struct ExactKey: Hashable {
    let string: String

    init(_ string: String) { self.string = string }

    static func == (a: ExactKey, b: ExactKey) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.string.utf8.count)
        for byte in self.string.utf8 { hasher.combine(byte) }
    }
}

/// Why a document is not valid TOML, and where.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var position: TOMLPosition
    /// The key being read when the mistake was found (`server.port`, `sensors[1].name`), or empty (in a table
    /// header, or before any key).
    public var keyPath: [TOMLPathComponent]
    /// What is wrong, without position or key path: `expected '=' after the key, saw '8'`.
    public var message: String

    public init(position: TOMLPosition, keyPath: [TOMLPathComponent] = [], message: String) {
        self.position = position
        self.keyPath = keyPath
        self.message = message
    }

    public var line: Int { self.position.line }
    public var column: Int { self.position.column }

    /// `LINE:COLUMN: message`.
    public var description: String { "\(self.position): \(self.message)" }

    /// `FILE:LINE:COLUMN: message`.
    public func description(file: String) -> String { "\(file):\(self.description)" }
}

extension TOMLPathComponent {
    /// `server.tls.ca_file`, `sensors[0].name`, `"odd key".x`: bare keys as they are, other keys quoted.
    public static func render(_ path: some Sequence<TOMLPathComponent>) -> String {
        var out = ""
        for component in path {
            switch component {
            case .key(let key):
                if !out.isEmpty { out += "." }
                out += Self.render(key: key)
            case .index(let index):
                out += "[\(index)]"
            }
        }
        return out
    }

    /// A key as TOML writes it: bare when it can be, else a basic string with escapes.
    public static func render(key: String) -> String {
        let bare = !key.isEmpty && key.utf8.allSatisfy { TOMLParser.isBareKeyByte($0) }
        return bare ? key : TOMLValue.basicString(key)
    }
}

extension TOMLValue {
    /// `value` as a TOML basic string: quoted, with `"`, `\`, control characters and DEL escaped.
    public static func basicString(_ value: String) -> String {
        var escaped = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\r": escaped += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    escaped += "\\u" + TOMLParser.hex(scalar.value, digits: 4)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }
}
