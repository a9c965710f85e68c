@testable import AgentConfig
import AgentCore
import TBJSON
import TBTOML

/// `config.toml`: the TOML reader (`TOMLParser`, on the raw bytes) and, over it, `ConfigurationLoader.parse(_:path:)`
/// and `.parseDeviceSettings(_:path:)`.
///
/// Properties: no crash; the reader either returns a tree or a positioned error, and every position it gives (of
/// a key, of a value, of an error) is a line and column that exist in the text; what it reads encodes to tagged JSON
/// that parses back to the same; every problem the loader reports is placed in the file it names, at a line and
/// column that exist in the text; a secret (`device_secret`, `token`, `password` in `[provisioning]`) written once
/// in the file never appears in a problem's message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    let path = "/nonexistent/tb-agent-fuzz/config.toml"

    // The reader, on the bytes as they are (not UTF-8 is one of its errors).
    let rawLines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    func checkPlace(_ lines: [ArraySlice<UInt8>], _ position: (line: Int, column: Int), _ what: @autoclosure () -> String) {
        require(position.line >= 1 && position.line <= lines.count, "\(what()): line \(position.line) of \(lines.count)")
        // Columns count characters, so they lie within the line's bytes, plus one for the end of the line.
        let length = position.line >= 1 && position.line <= lines.count ? lines[position.line - 1].count : 0
        require(position.column >= 1 && position.column <= length + 1, "\(what()): column \(position.column) on line \(position.line)")
    }
    func checkTree(_ value: TOMLValue, _ what: String, depth: Int) {
        require(depth <= TOMLParser.defaultMaxDepth + 1, "\(what): nested \(depth) deep")
        checkPlace(rawLines, (value.position.line, value.position.column), "value \(what)")
        switch value.kind {
        case .table(let table):
            for entry in table.entries {
                checkPlace(rawLines, (entry.keyPosition.line, entry.keyPosition.column), "key \(what).\(entry.key)")
                checkTree(entry.value, what + "." + entry.key, depth: depth + 1)
            }
        case .array(let items):
            for (index, item) in items.enumerated() { checkTree(item, what + "[\(index)]", depth: depth + 1) }
        default:
            break
        }
    }
    var document: TOMLTable? = nil
    do {
        let root = try TOMLParser.parse(bytes: bytes)
        document = root
        for entry in root.entries {
            checkPlace(rawLines, (entry.keyPosition.line, entry.keyPosition.column), "key \(entry.key)")
            checkTree(entry.value, entry.key, depth: 1)
        }
        let json = TOMLTaggedJSON.encode(root)
        let again = try? JSONValue.parse(json.serialized, maxDepth: 1000)
        require(again == json, "the tagged JSON does not read back: \(json.serialized)")
    } catch {
        checkPlace(rawLines, (error.line, error.column), "error \(error)")
        require(!error.message.isEmpty, "an error without a message")
    }

    // The loader, on the text (invalid UTF-8 replaced, as reading the file as text does).
    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { ArraySlice($0) }
    var problems: [ConfigurationProblem] = []
    do {
        _ = try ConfigurationLoader.parse(text, path: path)
    } catch {
        problems += error.problems
        require(!error.problems.isEmpty, "an error without problems")
    }
    do {
        _ = try ConfigurationLoader.parseDeviceSettings(text, path: path)
    } catch {
        problems += error.problems
    }
    for problem in problems {
        if problem.file == path, let line = problem.line {
            checkPlace(lines, (line, problem.column ?? 1), problem.message)
        }
        require((problem.line == nil) == (problem.column == nil), "half a position: \(problem)")
        require(problem.description.hasPrefix(problem.file + ":"), "a problem that does not start with its file: \(problem)")
    }

    // The secrets, when the text is TOML and each is a string written exactly once in it. A secret may also be a
    // word the messages use anyway ("gpio"): it leaks when the messages show it more often than they do for the same
    // file with a stand-in of the same length in its place.
    if let provisioning = document?["provisioning"]?.table {
        for key in ["device_secret", "token", "password"] {
            guard let secret = provisioning[key]?.string, secret.count >= 4,
                text.split(separator: secret, omittingEmptySubsequences: false).count == 2,
                let standIn = sameLengthStandIn(secret)
            else { continue }
            func shown(_ problems: [ConfigurationProblem]) -> Int {
                problems.reduce(0) { $0 + $1.message.split(separator: secret, omittingEmptySubsequences: false).count - 1 }
            }
            let count = shown(problems)
            guard count > 0 else { continue }
            var masked: [ConfigurationProblem] = []
            let maskedText = text.replacing(secret, with: standIn)
            do { _ = try ConfigurationLoader.parse(maskedText, path: path) } catch { masked += error.problems }
            do { _ = try ConfigurationLoader.parseDeviceSettings(maskedText, path: path) } catch { masked += error.problems }
            require(count <= shown(masked), "[provisioning] \(key) shows in: \(problems.filter { $0.message.contains(secret) })")
        }
    }
    return 0
}
