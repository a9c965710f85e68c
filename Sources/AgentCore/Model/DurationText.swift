/// Durations in configuration files are strings with a unit: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, or combined
/// (`"1m30s"`). A bare number is refused, since nobody can tell whether it meant seconds or milliseconds.
public enum DurationText {
    public static let expectedForm = "a duration string with a unit, like \"500ms\", \"10s\", \"5m\" or \"1h\""

    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.filter { !$0.isWhitespace }
        guard !trimmed.isEmpty else { return nil }
        var total: Duration = .zero
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !digits.isEmpty, let value = Double(digits), value.isFinite, value >= 0 else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix(while: { $0.isLetter || $0 == "µ" })
            rest = rest.dropFirst(unit.count)
            let seconds: Double
            switch unit.lowercased() {
            case "ns": seconds = value / 1_000_000_000
            case "us", "µs": seconds = value / 1_000_000
            case "ms": seconds = value / 1000
            case "s": seconds = value
            case "m", "min": seconds = value * 60
            case "h": seconds = value * 3600
            case "d": seconds = value * 86400
            default: return nil
            }
            guard seconds < 10 * 365 * 86400 else { return nil }
            total += .nanoseconds(Int64((seconds * 1_000_000_000).rounded()))
        }
        return total
    }

    /// The shortest text that parses back to the same duration: `20ms`, `10s`, `5m`, `1h30m`.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attos) = duration.components
        let ms = seconds * 1000 + attos / 1_000_000_000_000_000
        if ms % 1000 != 0 { return "\(ms)ms" }
        var s = ms / 1000
        if s == 0 { return "0s" }
        var out = ""
        if s >= 3600 && s % 60 == 0 {
            out += "\(s / 3600)h"
            s %= 3600
        }
        if s >= 60 && s % 60 == 0 || (s >= 60 && out.isEmpty == false) {
            if s >= 60 {
                out += "\(s / 60)m"
                s %= 60
            }
        }
        if s > 0 || out.isEmpty { out += "\(s)s" }
        return out
    }
}
