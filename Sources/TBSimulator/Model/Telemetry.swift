import TBJSON

/// One timestamped set of values from a telemetry message. `ts` is the device's timestamp, or the server's time
/// when the device gave none.
public struct TelemetryEntry: Sendable, Hashable {
    public var ts: Int64
    public var values: [(String, JSONValue)]
    /// Whether `ts` came from the device (`{"ts":..,"values":{..}}`).
    public var deviceTimestamp: Bool

    public init(ts: Int64, values: [(String, JSONValue)], deviceTimestamp: Bool) {
        self.ts = ts
        self.values = values
        self.deviceTimestamp = deviceTimestamp
    }

    public static func == (lhs: TelemetryEntry, rhs: TelemetryEntry) -> Bool {
        lhs.ts == rhs.ts && lhs.deviceTimestamp == rhs.deviceTimestamp
            && JSONValue.object(lhs.values) == JSONValue.object(rhs.values)
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.ts) }

    public var json: JSONValue { .object([("ts", .integer(self.ts)), ("values", .object(self.values))]) }
}

/// ThingsBoard's `JsonConverter` rules for telemetry and attribute payloads (reference sections 3 and 4).
public enum PayloadConverter {
    /// Telemetry: an object, `{"ts":..,"values":{..}}`, or an array of these.
    public static func telemetry(_ payload: [UInt8], serverTime: Int64) throws(PayloadError) -> [TelemetryEntry] {
        let json = try Gson.parse(payload)
        switch json {
        case .object:
            return [try self.entry(json, serverTime: serverTime)]
        case .array(let elements):
            var entries: [TelemetryEntry] = []
            for element in elements {
                guard case .object = element else { throw .adaptor("Can't parse value: \(element.serialized)") }
                entries.append(try self.entry(element, serverTime: serverTime))
            }
            return entries
        default:
            throw .adaptor("Can't parse value: \(json.serialized)")
        }
    }

    static func entry(_ object: JSONValue, serverTime: Int64) throws(PayloadError) -> TelemetryEntry {
        if let ts = object["ts"], let values = object["values"] {
            let timestamp = try Gson.asLong(ts, field: "ts")
            guard case .object(let members) = values else { throw .adaptor("\"values\" is not a JSON object") }
            return TelemetryEntry(ts: timestamp, values: try self.keyValues(members), deviceTimestamp: true)
        }
        guard case .object(let members) = object else { throw .adaptor("not a JSON object") }
        return TelemetryEntry(ts: serverTime, values: try self.keyValues(members), deviceTimestamp: false)
    }

    /// Attributes: the payload must be a JSON object.
    public static func attributes(_ payload: [UInt8]) throws(PayloadError) -> [(String, JSONValue)] {
        let json = try Gson.parse(payload)
        guard case .object(let members) = json else { throw .adaptor("Can't parse value: \(json.serialized)") }
        return try self.keyValues(members)
    }

    /// Converts each value by ThingsBoard's type rules; `null` values are skipped.
    static func keyValues(_ members: [(String, JSONValue)]) throws(PayloadError) -> [(String, JSONValue)] {
        var result: [(String, JSONValue)] = []
        for (key, value) in members {
            if let converted = try self.convert(value) { result.append((key, converted)) }
        }
        return result
    }

    /// One value: booleans stay, numbers become LONG or DOUBLE (or STRING when they do not fit), numeric-looking
    /// strings are cast (`transport.json.type_cast_enabled=true`), objects and arrays stay JSON, `null` is skipped.
    /// LONG is written as a JSON integer and DOUBLE as Java writes a `double` (`21.0`).
    public static func convert(_ value: JSONValue) throws(PayloadError) -> JSONValue? {
        switch value {
        case .null: return nil
        case .bool: return value
        case .integer: return value
        case .number(let text): return self.numeric(text)
        case .string(let s):
            if self.isParsable(s) { return self.numeric(s) }
            return value
        case .array, .object: return value
        }
    }

    /// Apache Commons `NumberUtils.isParsable`: an optional leading `-`, digits with at most one `.`, no exponent.
    static func isParsable(_ s: String) -> Bool {
        var chars = Substring(s)
        if chars.first == "-" { chars = chars.dropFirst() }
        guard !chars.isEmpty, chars.last != "." else { return false }
        var seenDot = false
        var digits = 0
        for c in chars {
            if c == "." {
                if seenDot { return false }
                seenDot = true
            } else if c.isASCII && c.isNumber {
                digits += 1
            } else {
                return false
            }
        }
        return digits > 0
    }

    /// `buildNumericKeyValueProto`: DOUBLE when the stripped scale is positive or the literal has a `.` and no
    /// exponent (STRING when the scale is over 16), else LONG (STRING when it does not fit in a long).
    static func numeric(_ text: String) -> JSONValue {
        guard let decimal = Decimal(literal: text) else { return .string(text) }
        let isSimpleDouble = text.contains(".") && !text.contains("e") && !text.contains("E")
        if decimal.strippedScale > 0 || isSimpleDouble {
            if decimal.scale <= 16, let d = Double(text) { return .number(javaDoubleString(d)) }
            return .string(decimal.plainString)
        }
        if let long = decimal.int64Value { return .integer(long) }
        return .string(decimal.plainString)
    }

    /// A decimal literal as digits and a scale, like Java's `BigDecimal`.
    struct Decimal {
        var negative: Bool
        /// Unscaled digits without leading zeros ("0" for zero).
        var digits: String
        /// Value = digits × 10^-scale.
        var scale: Int

        init?(literal: String) {
            var s = Substring(literal)
            self.negative = false
            if s.first == "-" {
                self.negative = true
                s = s.dropFirst()
            } else if s.first == "+" {
                s = s.dropFirst()
            }
            var exponent = 0
            if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                guard let value = Int(s[s.index(after: e)...]) else { return nil }
                exponent = value
                s = s[..<e]
            }
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            let integerPart = parts[0]
            let fraction = parts.count == 2 ? parts[1] : ""
            guard !(integerPart.isEmpty && fraction.isEmpty),
                  (integerPart + fraction).allSatisfy({ $0.isASCII && $0.isNumber })
            else { return nil }
            var all = String(integerPart + fraction)
            while all.count > 1 && all.first == "0" { all.removeFirst() }
            if all.isEmpty { all = "0" }
            self.digits = all
            self.scale = fraction.count - exponent
        }

        /// The scale after `stripTrailingZeros()` (zero for zero).
        var strippedScale: Int {
            if self.digits == "0" { return 0 }
            let trailing = self.digits.reversed().prefix { $0 == "0" }.count
            return self.scale - trailing
        }

        var int64Value: Int64? {
            guard self.strippedScale <= 0 else { return nil }
            var text = self.digits
            if self.scale < 0 {
                guard -self.scale < 40 else { return nil }
                text += String(repeating: "0", count: -self.scale)
            } else if self.scale > 0 {
                text = String(text.dropLast(self.scale))
                if text.isEmpty { text = "0" }
            }
            return Int64((self.negative ? "-" : "") + text)
        }

        /// `toPlainString()`.
        var plainString: String {
            let sign = self.negative && self.digits != "0" ? "-" : ""
            if self.scale <= 0 { return sign + self.digits + String(repeating: "0", count: -self.scale) }
            if self.digits.count > self.scale {
                let index = self.digits.index(self.digits.endIndex, offsetBy: -self.scale)
                return sign + self.digits[..<index] + "." + self.digits[index...]
            }
            return sign + "0." + String(repeating: "0", count: self.scale - self.digits.count) + self.digits
        }
    }
}
