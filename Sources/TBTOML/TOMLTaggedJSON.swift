import TBJSON

/// toml-test's tagged JSON (https://github.com/toml-lang/toml-test): tables are objects, arrays are arrays, and
/// every other value is `{"type": "string|integer|float|bool|datetime|datetime-local|date-local|time-local",
/// "value": "…"}`. The form `tb-agent toml-decode` writes, and the conformance tests compare.
public enum TOMLTaggedJSON {
    public static func encode(_ table: TOMLTable) -> JSONValue {
        .object(table.entries.map { ($0.key, self.encode($0.value)) })
    }

    public static func encode(_ value: TOMLValue) -> JSONValue {
        switch value.kind {
        case .table(let table): return self.encode(table)
        case .array(let items): return .array(items.map { self.encode($0) })
        case .string(let s): return self.tagged("string", s)
        case .integer(let i): return self.tagged("integer", String(i))
        case .float(let d): return self.tagged("float", self.floatText(d))
        case .boolean(let b): return self.tagged("bool", b ? "true" : "false")
        case .offsetDateTime(let dt): return self.tagged("datetime", dt.description)
        case .localDateTime(let dt): return self.tagged("datetime-local", dt.description)
        case .localDate(let d): return self.tagged("date-local", d.description)
        case .localTime(let t): return self.tagged("time-local", t.description)
        }
    }

    /// `nan`, `inf`, `-inf`, or the shortest text that reads back as `value` (`0.1`, `-0.0`, `1e+20`).
    public static func floatText(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return value.description
    }

    static func tagged(_ type: String, _ value: String) -> JSONValue {
        .object([("type", .string(type)), ("value", .string(value))])
    }
}
