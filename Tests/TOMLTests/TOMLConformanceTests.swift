import AgentTestSupport
import Foundation
import TBJSON
import TBTOML
import Testing

/// toml-test's TOML 1.0 cases (`../shared/reference/toml-test`, data only): every valid case decodes to its expected
/// tagged JSON, every invalid case is refused with a positioned error.
enum TOMLTestSuite {
    static let root = TestSupport.sharedFolder.appendingPathComponent("reference/toml-test/tests")
    static let listFile = root.appendingPathComponent("files-toml-1.0.0")

    /// The 1.0 cases (paths relative to `root`); empty when the data is missing (`dataIsThere` then fails).
    static let cases: [String] = {
        guard let text = try? String(contentsOf: listFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasSuffix(".toml") }
    }()
    static let valid = cases.filter { $0.hasPrefix("valid/") }
    static let invalid = cases.filter { $0.hasPrefix("invalid/") }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent(name)))
    }
}

@Suite struct TOMLConformanceTests {
    /// Fails loudly when the suite is not beside the repository: the tests below would otherwise have no cases.
    @Test func dataIsThere() {
        #expect(
            FileManager.default.fileExists(atPath: TOMLTestSuite.listFile.path),
            "toml-test is missing: expected \(TOMLTestSuite.listFile.path) (../shared/reference/toml-test from the repository)")
        #expect(TOMLTestSuite.valid.count >= 200, "\(TOMLTestSuite.valid.count) valid cases")
        #expect(TOMLTestSuite.invalid.count >= 450, "\(TOMLTestSuite.invalid.count) invalid cases")
    }

    @Test(arguments: TOMLTestSuite.valid)
    func validCaseDecodesToItsJSON(_ name: String) throws {
        let input = try TOMLTestSuite.bytes(name)
        let expectedText = try TOMLTestSuite.bytes(String(name.dropLast(5)) + ".json")
        let expected = try JSONValue.parse(expectedText, maxDepth: 1000)
        let root: TOMLTable
        do {
            root = try TOMLParser.parse(bytes: input)
        } catch {
            Issue.record("\(name): refused: \(error)")
            return
        }
        let decoded = TOMLTaggedJSON.encode(root)
        var differences: [String] = []
        TaggedJSONComparison.compare(decoded, expected, "", &differences)
        #expect(differences.isEmpty, "\(name):\n\(differences.prefix(10).joined(separator: "\n"))")
        // What toml-decode writes is JSON that reads back to the same value.
        #expect(try JSONValue.parse(decoded.serialized, maxDepth: 1000) == decoded)
    }

    @Test(arguments: TOMLTestSuite.invalid)
    func invalidCaseIsRefusedWithAPosition(_ name: String) throws {
        let input = try TOMLTestSuite.bytes(name)
        do {
            let root = try TOMLParser.parse(bytes: input)
            Issue.record("\(name): accepted as \(TOMLTaggedJSON.encode(root).serialized)")
        } catch {
            let lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            #expect(error.line >= 1 && error.line <= lines.count, "\(name): \(error)")
            let lineBytes = error.line >= 1 && error.line <= lines.count ? lines[error.line - 1].count : 0
            #expect(error.column >= 1 && error.column <= lineBytes + 1, "\(name): \(error)")
            #expect(!error.message.isEmpty)
        }
    }
}

/// Structural comparison of tagged JSON, by toml-test's rules: objects by key (in any order), arrays in order,
/// integers and floats by value (any NaN equals any NaN), date-times by their instant written canonically.
enum TaggedJSONComparison {
    static func compare(_ actual: JSONValue, _ expected: JSONValue, _ path: String, _ differences: inout [String]) {
        if let (expectedType, expectedValue) = self.tag(expected) {
            guard let (type, value) = self.tag(actual) else {
                differences.append("\(path): expected \(expectedType) \(expectedValue), got \(actual.serialized)")
                return
            }
            guard type == expectedType else {
                differences.append("\(path): expected \(expectedType) \(expectedValue), got \(type) \(value)")
                return
            }
            if !self.sameValue(type, value, expectedValue) {
                differences.append("\(path): expected \(type) \(expectedValue), got \(value)")
            }
            return
        }
        switch (actual, expected) {
        case (.object(let a), .object(let e)):
            let aKeys = Set(a.map(\.0)), eKeys = Set(e.map(\.0))
            if aKeys != eKeys {
                differences.append(
                    "\(path): keys \(aKeys.sorted()) where \(eKeys.sorted()) were expected")
                return
            }
            for (key, value) in e {
                guard let other = a.first(where: { $0.0 == key })?.1 else { continue }
                self.compare(other, value, path + "." + key, &differences)
            }
        case (.array(let a), .array(let e)):
            guard a.count == e.count else {
                differences.append("\(path): \(a.count) elements where \(e.count) were expected")
                return
            }
            for (index, (x, y)) in zip(a, e).enumerated() { self.compare(x, y, path + "[\(index)]", &differences) }
        default:
            differences.append("\(path): got \(actual.serialized), expected \(expected.serialized)")
        }
    }

    /// `(type, value)` of a tagged scalar.
    static func tag(_ value: JSONValue) -> (String, String)? {
        guard case .object(let members) = value, members.count == 2,
            let type = value["type"]?.stringValue, let text = value["value"]?.stringValue
        else { return nil }
        return (type, text)
    }

    static func sameValue(_ type: String, _ a: String, _ b: String) -> Bool {
        switch type {
        case "integer":
            guard let x = Int64(a), let y = Int64(b) else { return false }
            return x == y
        case "float":
            guard let x = self.float(a), let y = self.float(b) else { return false }
            if x.isNaN || y.isNaN { return x.isNaN && y.isNaN }
            return x == y && x.sign == y.sign
        case "datetime", "datetime-local", "date-local", "time-local":
            return self.canonicalDateTime(a) == self.canonicalDateTime(b)
        default:
            return a == b
        }
    }

    static func float(_ text: String) -> Double? {
        switch text {
        case "nan", "+nan", "-nan": return .nan
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        default: return Double(text)
        }
    }

    /// Upper case `T` and `Z`, `T` for a space between date and time, fractional seconds without trailing zeros,
    /// `Z` for a zero offset.
    static func canonicalDateTime(_ text: String) -> String {
        var s = text.uppercased()
        if s.count > 10, s[s.index(s.startIndex, offsetBy: 10)] == " " {
            s.replaceSubrange(s.index(s.startIndex, offsetBy: 10)...s.index(s.startIndex, offsetBy: 10), with: "T")
        }
        if s.hasSuffix("+00:00") || s.hasSuffix("-00:00") { s = String(s.dropLast(6)) + "Z" }
        if let dot = s.firstIndex(of: ".") {
            let digits = s[s.index(after: dot)...].prefix { $0.isNumber }
            let rest = s[digits.endIndex...]
            var trimmed = String(digits)
            while trimmed.hasSuffix("0") { trimmed.removeLast() }
            s = String(s[..<dot]) + (trimmed.isEmpty ? "" : "." + trimmed) + rest
        }
        return s
    }
}
