import TBJSON

/// How a payload failed ThingsBoard's JSON handling; the two kinds end differently on the wire.
public enum PayloadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An `AdaptorException` (unparseable JSON, wrong shape): MQTT 3.x closes without PUBACK; MQTT 5 with QoS 1
    /// gets PUBACK 0x99 and stays connected.
    case adaptor(String)
    /// Any other `RuntimeException` (missing required field, JSON `null` read as a string, bad enum name): PUBACK
    /// (0x83 in MQTT 5) and then the connection is closed.
    case runtime(String)

    public var description: String {
        switch self {
        case .adaptor(let m): return m
        case .runtime(let m): return m
        }
    }
}

/// Gson's `JsonElement` accessors, which ThingsBoard leans on, reproduced on ``JSONValue``.
enum Gson {
    /// Gson's lenient `JsonParser.parseString`; an empty or blank payload is `JsonNull`, as in Gson.
    static func parse(_ payload: [UInt8]) throws(PayloadError) -> JSONValue {
        if payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .null }
        do {
            return try JSONValue.parse(payload, lenient: true)
        } catch {
            throw .adaptor("payload is not JSON: \(error)")
        }
    }

    /// `getAsString()`: primitives as text, a one-element array as its element, anything else throws.
    static func asString(_ value: JSONValue, field: String) throws(PayloadError) -> String {
        switch value {
        case .string(let s): return s
        case .integer(let v): return String(v)
        case .number(let text): return text
        case .bool(let b): return b ? "true" : "false"
        case .array(let elements) where elements.count == 1: return try asString(elements[0], field: field)
        case .null: throw .runtime("field \(field) is JSON null")
        default: throw .runtime("field \(field) is not a string")
        }
    }

    /// `getAsBoolean()`: a boolean, or a string parsed with `Boolean.parseBoolean`.
    static func asBoolean(_ value: JSONValue, field: String) throws(PayloadError) -> Bool {
        switch value {
        case .bool(let b): return b
        case .array(let elements) where elements.count == 1: return try asBoolean(elements[0], field: field)
        case .null: throw .runtime("field \(field) is JSON null")
        case .object, .array: throw .runtime("field \(field) is not a boolean")
        default: return try asString(value, field: field).lowercased() == "true"
        }
    }

    /// `getAsLong()`: numbers truncated, numeric strings parsed, anything else throws (`NumberFormatException`).
    static func asLong(_ value: JSONValue, field: String) throws(PayloadError) -> Int64 {
        switch value {
        case .integer(let v): return v
        case .number(let text):
            if let v = Int64(text) { return v }
            if let d = Double(text), d.isFinite, let v = Int64(exactly: d.rounded(.towardZero)) { return v }
            throw .runtime("field \(field) is not a long: \(text)")
        case .string(let s):
            guard let v = Int64(s) else { throw .runtime("field \(field) is not a long: \(s)") }
            return v
        case .array(let elements) where elements.count == 1: return try asLong(elements[0], field: field)
        default: throw .runtime("field \(field) is not a long")
        }
    }
}

/// Java's `Double.toString`, which Gson uses to write a DOUBLE (`1.0`, `21.5`, `1.0E20`, `1.0E-5`).
func javaDoubleString(_ d: Double) -> String {
    if d.isNaN { return "NaN" }
    if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description gives the shortest round-tripping digits; only the layout differs from Java's.
    var text = "\(abs(d))"
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(text[text.index(after: e)...]) ?? 0
        text = String(text[..<e])
    }
    var digits = text.replacingOccurrencesOfDot()
    let pointPosition = (text.firstIndex(of: ".").map { text.distance(from: text.startIndex, to: $0) } ?? text.count)
    // Value = 0.digits × 10^(pointPosition + exponent), after removing leading zeros.
    var decimalExponent = pointPosition + exponent
    while digits.first == "0" && digits.count > 1 {
        digits.removeFirst()
        decimalExponent -= 1
    }
    while digits.last == "0" && digits.count > 1 { digits.removeLast() }
    let sign = d < 0 ? "-" : ""
    let magnitude = abs(d)
    if magnitude >= 1e-3 && magnitude < 1e7 {
        if decimalExponent <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalExponent) + digits
        }
        if digits.count <= decimalExponent {
            return sign + digits + String(repeating: "0", count: decimalExponent - digits.count) + ".0"
        }
        let index = digits.index(digits.startIndex, offsetBy: decimalExponent)
        return sign + digits[..<index] + "." + digits[index...]
    }
    let first = digits.prefix(1)
    let rest = digits.dropFirst()
    return sign + first + "." + (rest.isEmpty ? "0" : String(rest)) + "E" + String(decimalExponent - 1)
}

extension String {
    fileprivate func replacingOccurrencesOfDot() -> String { self.filter { $0 != "." } }
}
