import AgentCore
import TBTOML

/// Collects problems for one file, positioning each at its key.
final class ProblemCollector {
    let file: String
    /// The parsed document, whose keys and values carry their positions (empty until it is parsed).
    var root = TOMLTable()
    private(set) var problems: [ConfigurationProblem] = []

    init(file: String) {
        self.file = file
    }

    /// Reports `message` about `path`, positioned at the key (or its nearest written ancestor).
    func report(_ path: KeyPath, _ message: String) {
        let position = self.root.position(of: path)
        let prefix = path.isEmpty ? "" : "\(path): "
        self.problems.append(
            ConfigurationProblem(
                file: self.file, line: position?.line, column: position?.column, keyPath: path.description,
                message: prefix + message))
    }

    func append(_ problem: ConfigurationProblem) { self.problems.append(problem) }

    /// A document that is not TOML: one problem at the reader's position, naming the key it was reading.
    func reportSyntaxError(_ error: TOMLError) {
        let keyPath = KeyPath(error.keyPath)
        let prefix = keyPath.isEmpty ? "" : "\(keyPath): "
        self.problems.append(
            ConfigurationProblem(
                file: self.file, line: error.line, column: error.column, keyPath: keyPath.description,
                message: "\(prefix)TOML syntax error: \(error.message)"))
    }
}

/// Typed access to one TOML table, reporting wrong types and out-of-range values by key path.
struct TableReader {
    let path: KeyPath
    let table: [String: TOMLNode]
    let problems: ProblemCollector

    func has(_ key: String) -> Bool { self.table[key] != nil }
    func keyPath(_ key: String) -> KeyPath { self.path.appending(key) }
    func report(_ key: String, _ message: String) { self.problems.report(self.keyPath(key), message) }

    /// Reports every key not in `known`, with a suggestion.
    func rejectUnknownKeys(_ known: [String], section: String) {
        for key in self.table.keys.sorted() where !known.contains(key) {
            let hint = Suggestion.didYouMean(key, known)
            self.report(key, "unknown key in \(section) (known keys: \(known.joined(separator: ", ")))\(hint)")
        }
    }

    func string(_ key: String, expected: String) -> String? {
        guard let node = self.table[key] else { return nil }
        guard case .string(let value) = node else {
            self.report(key, "expected \(expected), found \(node.found)")
            return nil
        }
        return value
    }

    /// A string that is not empty (nor only spaces).
    func nonEmptyString(_ key: String, expected: String) -> String? {
        guard let value = self.string(key, expected: expected) else { return nil }
        if value.allSatisfy(\.isWhitespace) {
            self.report(key, "is empty; expected \(expected)")
            return nil
        }
        return value
    }

    func requiredString(_ key: String, expected: String) -> String? {
        guard self.has(key) else {
            self.report(key, "missing required key; expected \(expected)")
            return nil
        }
        return self.nonEmptyString(key, expected: expected)
    }

    func integer(_ key: String, range: ClosedRange<Int>, expected: String) -> Int? {
        guard let node = self.table[key] else { return nil }
        guard case .integer(let value) = node else {
            self.report(key, "expected \(expected), found \(node.found)")
            return nil
        }
        guard range.contains(value) else {
            self.report(key, "\(value) is out of range; expected \(expected)")
            return nil
        }
        return value
    }

    func bool(_ key: String) -> Bool? {
        guard let node = self.table[key] else { return nil }
        guard case .boolean(let value) = node else {
            self.report(key, "expected true or false, found \(node.found)")
            return nil
        }
        return value
    }

    /// An integer or a floating-point number.
    func number(_ key: String, expected: String) -> Double? {
        guard let node = self.table[key] else { return nil }
        switch node {
        case .integer(let value): return Double(value)
        case .float(let value) where value.isFinite: return value
        default:
            self.report(key, "expected \(expected), found \(node.found)")
            return nil
        }
    }

    /// A duration string (`"500ms"`) within `range`.
    func duration(_ key: String, range: ClosedRange<Duration>) -> Duration? {
        guard let node = self.table[key] else { return nil }
        let rangeText = "from \(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))"
        guard case .string(let text) = node else {
            let hint: String
            if case .integer(let n) = node {
                hint = " (a bare number has no unit: write \"\(n)s\" or \"\(n)ms\")"
            } else {
                hint = ""
            }
            self.report(key, "expected \(DurationText.expectedForm), found \(node.found)\(hint)")
            return nil
        }
        guard let value = DurationText.parse(text) else {
            self.report(key, "\"\(text)\" is not a duration; expected \(DurationText.expectedForm)")
            return nil
        }
        guard range.contains(value) else {
            self.report(key, "\"\(text)\" is out of range; expected a duration \(rangeText)")
            return nil
        }
        return value
    }

    /// A size in bytes: an integer, or a string with a unit (`"64MiB"`, `"512KiB"`, `"1GB"`), within `range`.
    func byteSize(_ key: String, range: ClosedRange<Int>) -> Int? {
        guard let node = self.table[key] else { return nil }
        let expected = "a size like \"64MiB\", \"512KiB\" or a number of bytes"
        let value: Int?
        switch node {
        case .integer(let n): value = Int(exactly: n)
        case .string(let text):
            let trimmed = text.filter { !$0.isWhitespace }
            let digits = trimmed.prefix(while: { $0.isNumber })
            let units: [String: Int] = [
                "": 1, "B": 1, "KB": 1000, "KIB": 1 << 10, "K": 1 << 10, "MB": 1_000_000, "MIB": 1 << 20, "M": 1 << 20,
                "GB": 1_000_000_000, "GIB": 1 << 30, "G": 1 << 30,
            ]
            if let n = Int(digits), let unit = units[trimmed.dropFirst(digits.count).uppercased()] {
                value = n.multipliedReportingOverflow(by: unit).overflow ? nil : n * unit
            } else {
                value = nil
            }
        default:
            self.report(key, "expected \(expected), found \(node.found)")
            return nil
        }
        guard let value else {
            self.report(key, "not a size; expected \(expected)")
            return nil
        }
        guard range.contains(value) else {
            self.report(key, "\(value) bytes is out of range; expected \(range.lowerBound) to \(range.upperBound) bytes")
            return nil
        }
        return value
    }

    /// One of a string enumeration's raw values, with a suggestion when it is a near miss.
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) -> E? where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let expected = "one of " + names.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let text = self.string(key, expected: expected) else { return nil }
        guard let value = E(rawValue: text) else {
            self.report(key, "\"\(text)\" is not valid: expected \(expected)\(Suggestion.didYouMean(text, names))")
            return nil
        }
        return value
    }

    /// A sub-table (`[server.tls]`), or nil with a problem when the key holds something else.
    func table(_ key: String, expected: String) -> TableReader? {
        guard let node = self.table[key] else { return nil }
        guard case .table(let inner) = node else {
            self.report(key, "expected \(expected), found \(node.found)")
            return nil
        }
        return TableReader(path: self.keyPath(key), table: inner, problems: self.problems)
    }
}
