import TextSearch

/// Why a sensor gave no reading. The message names the file or device and, where there is one, the fix.
public struct SensorFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The device or its file does not exist (not wired, overlay not enabled, wrong name).
        case notFound
        /// The file exists but may not be read.
        case permissionDenied
        /// The kernel could not talk to the sensor this time (EIO, ETIMEDOUT, EAGAIN): worth retrying. DHT sensors
        /// do this routinely.
        case transient
        /// The sensor answered with data that is not a reading (CRC mismatch, the DS18B20 power-on value 85 °C).
        case invalidReading
        /// The file holds something this parser does not understand.
        case malformed
        /// The GPIO line could not be requested or read.
        case hardware
        /// Any other I/O error.
        case ioError
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { self.message }
}

/// Parsers for the files the kernel's sensor drivers write. Pure: the caller reads the file.
public enum SensorParsers {
    /// The DS18B20 reports 85 °C after power-on, before its first conversion: not a reading.
    public static let ds18b20PowerOnMillidegrees = 85000

    /// Parses a 1-Wire thermometer's `w1_slave` file into °C.
    ///
    /// ```
    /// 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    /// 72 01 4b 46 7f ff 0e 10 57 t=23125
    /// ```
    /// `NO` after the CRC, the power-on value 85000 and an all-zero scratchpad (a shorted or unpowered bus) are
    /// failed reads.
    public static func ds18b20W1Slave(_ text: String, file: String = "w1_slave") throws(SensorFailure) -> Double {
        let lines = text.split(whereSeparator: \.isNewline).map { BoardText.trim($0) }.filter { !$0.isEmpty }
        guard lines.count >= 2, let crcRange = lines[0].firstRange(ofText: "crc=") else {
            throw SensorFailure(.malformed, "\(file): expected two lines (`… crc=xx YES` and `… t=NNNNN`), got \(Self.quote(text))")
        }
        let verdict = lines[0][crcRange.upperBound...].split(separator: " ").last.map(String.init) ?? ""
        guard verdict == "YES" else {
            throw SensorFailure(.invalidReading, "\(file): CRC check failed (\(Self.quote(String(lines[0])))): noise on the 1-Wire bus; check the 4.7 kΩ pull-up and the cable")
        }
        let bytes = lines[0][..<crcRange.lowerBound].split(separator: " ").filter { $0 != ":" }
        if !bytes.isEmpty, bytes.allSatisfy({ $0 == "00" }) {
            throw SensorFailure(.invalidReading, "\(file): the scratchpad reads all zeros: the data line is shorted to ground or the sensor has no power")
        }
        guard let tRange = lines[1].firstRange(ofText: "t=") else {
            throw SensorFailure(.malformed, "\(file): no `t=` value in \(Self.quote(String(lines[1])))")
        }
        let valueText = lines[1][tRange.upperBound...]
        guard let millidegrees = Int(valueText) else {
            throw SensorFailure(.malformed, "\(file): `t=\(valueText)` is not a whole number of millidegrees")
        }
        return try Self.ds18b20Millidegrees(millidegrees, text: String(valueText), file: file)
    }

    /// Parses a 1-Wire thermometer's `temperature` file (millidegrees, newer kernels) into °C.
    public static func ds18b20Temperature(_ text: String, file: String = "temperature") throws(SensorFailure) -> Double {
        let trimmed = BoardText.trim(text)
        guard let millidegrees = Int(trimmed) else {
            throw SensorFailure(.malformed, "\(file): expected millidegrees, got \(Self.quote(text))")
        }
        return try Self.ds18b20Millidegrees(millidegrees, text: String(trimmed), file: file)
    }

    private static func ds18b20Millidegrees(_ value: Int, text: String, file: String) throws(SensorFailure) -> Double {
        guard value != Self.ds18b20PowerOnMillidegrees else {
            throw SensorFailure(.invalidReading, "\(file): 85000 is the DS18B20 power-on value, not a reading: the sensor reset (power supply or parasite power too weak)")
        }
        return Self.decimal(text, exponent: -3) ?? Double(value) / 1000
    }

    /// Parses a thermal zone's `temp` (millidegrees) into °C.
    public static func thermal(_ text: String, file: String = "temp") throws(SensorFailure) -> Double {
        let trimmed = BoardText.trim(text)
        guard let millidegrees = Int(trimmed) else {
            throw SensorFailure(.malformed, "\(file): expected millidegrees, got \(Self.quote(text))")
        }
        return Self.decimal(String(trimmed), exponent: -3) ?? Double(millidegrees) / 1000
    }

    /// Parses an IIO channel value and applies the IIO ABI's rule: value = (raw + offset) × scale.
    ///
    /// Done in decimal, so `23125` with scale 0.001 is exactly 23.125 and not 23.125000000000004.
    public static func iio(_ text: String, scale: Double = 1, offset: Double = 0, file: String = "channel")
        throws(SensorFailure) -> Double
    {
        let trimmed = BoardText.trim(text)
        guard let raw = ExactDecimal(String(trimmed)) else {
            throw SensorFailure(.malformed, "\(file): expected a number, got \(Self.quote(text))")
        }
        let value: Double
        if let offsetDecimal = ExactDecimal("\(offset)"), let scaleDecimal = ExactDecimal("\(scale)"),
           let sum = raw.adding(offsetDecimal), let product = sum.multiplied(by: scaleDecimal),
           let exact = product.doubleValue
        {
            value = exact
        } else {
            guard let rawValue = Double(trimmed) else {
                throw SensorFailure(.malformed, "\(file): expected a number, got \(Self.quote(text))")
            }
            value = (rawValue + offset) * scale
        }
        // `1e999`, or a huge raw value times the scale: infinity is not a reading.
        guard value.isFinite else {
            throw SensorFailure(.malformed, "\(file): \(Self.quote(text)) (+ offset \(offset), × scale \(scale)) is out of range")
        }
        return value
    }

    /// (value + offset) × scale, in decimal; the value itself when scale is 1 and offset 0.
    public static func calibrate(_ value: Double, scale: Double, offset: Double) -> Double {
        guard scale != 1 || offset != 0 else { return value }
        if let v = ExactDecimal("\(value)"), let o = ExactDecimal("\(offset)"), let k = ExactDecimal("\(scale)"),
           let result = v.adding(o)?.multiplied(by: k)?.doubleValue
        {
            return result
        }
        return (value + offset) * scale
    }

    /// Rounds to `precision` decimal places; nil keeps the value as it is.
    public static func round(_ value: Double, precision: Int?) -> Double {
        guard let precision, value.isFinite else { return value }
        let places = min(max(precision, 0), 15)
        var factor = 1.0
        for _ in 0..<places { factor *= 10 }
        return (value * factor).rounded() / factor
    }

    /// `text` × 10^exponent, computed as decimal text so no binary rounding creeps in.
    private static func decimal(_ text: String, exponent: Int) -> Double? {
        ExactDecimal(text).flatMap { ExactDecimal(mantissa: $0.mantissa, exponent: $0.exponent + exponent).doubleValue }
    }

    static func quote(_ text: String) -> String {
        let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
        return "\"" + shown.replacingNewlines() + "\""
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        var out = ""
        for c in self { out += c.isNewline ? "\\n" : String(c) }
        return out
    }
}

/// A decimal number as mantissa × 10^exponent, for exact arithmetic on sensor values.
struct ExactDecimal: Sendable, Equatable {
    var mantissa: Int64
    var exponent: Int

    init(mantissa: Int64, exponent: Int) {
        self.mantissa = mantissa
        self.exponent = exponent
    }

    /// Parses `-12`, `3.25`, `1e-05`, `2.5E3`; nil for anything else (including too many digits).
    init?(_ text: String) {
        var rest = Substring(text)
        var negative = false
        if rest.first == "-" || rest.first == "+" {
            negative = rest.first == "-"
            rest = rest.dropFirst()
        }
        var mantissa: Int64 = 0
        var exponent = 0
        var digits = 0
        var seenPoint = false
        while let c = rest.first, c.isASCII, c.isNumber || c == "." {
            rest = rest.dropFirst()
            if c == "." {
                guard !seenPoint else { return nil }
                seenPoint = true
                continue
            }
            guard let digit = c.wholeNumberValue else { return nil }
            let (times, o1) = mantissa.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(Int64(digit))
            guard !o1, !o2 else { return nil }
            mantissa = plus
            digits += 1
            if seenPoint { exponent -= 1 }
        }
        guard digits > 0 else { return nil }
        if let e = rest.first, e == "e" || e == "E" {
            guard let power = Int(rest.dropFirst()), abs(power) < 300 else { return nil }
            exponent += power
            rest = ""
        }
        guard rest.isEmpty else { return nil }
        self.mantissa = negative ? -mantissa : mantissa
        self.exponent = exponent
    }

    func adding(_ other: ExactDecimal) -> ExactDecimal? {
        var a = self
        var b = other
        // Bring both to the smaller exponent.
        while a.exponent > b.exponent {
            let (m, o) = a.mantissa.multipliedReportingOverflow(by: 10)
            guard !o else { return nil }
            a = ExactDecimal(mantissa: m, exponent: a.exponent - 1)
        }
        while b.exponent > a.exponent {
            let (m, o) = b.mantissa.multipliedReportingOverflow(by: 10)
            guard !o else { return nil }
            b = ExactDecimal(mantissa: m, exponent: b.exponent - 1)
        }
        let (sum, overflow) = a.mantissa.addingReportingOverflow(b.mantissa)
        return overflow ? nil : ExactDecimal(mantissa: sum, exponent: a.exponent)
    }

    func multiplied(by other: ExactDecimal) -> ExactDecimal? {
        let (product, overflow) = self.mantissa.multipliedReportingOverflow(by: other.mantissa)
        return overflow ? nil : ExactDecimal(mantissa: product, exponent: self.exponent + other.exponent)
    }

    /// The nearest Double (the standard library parses decimal text with correct rounding).
    var doubleValue: Double? { Double("\(self.mantissa)e\(self.exponent)") }
}
