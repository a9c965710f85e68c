@testable import AgentConfig
import AgentCore
import TOMLKit

/// `config.toml`: `ConfigurationLoader.parse(_:path:)` and `.parseDeviceSettings(_:path:)`, over TOMLKit (whose C++
/// parser is built with the same instrumentation), and the key locator that positions problems.
///
/// Properties: no crash; every problem is placed in the file it names, at a line and column that exist in the text;
/// the key locator only records positions inside the text; a secret (`device_secret`, `token`, `password` in
/// `[provisioning]`) written once in the file never appears in a problem's message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzInput(data, size), as: UTF8.self)
    let path = "/nonexistent/tb-agent-fuzz/config.toml"
    // By bytes: as Characters, "\r\n" is one and would not split at "\n".
    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    func checkPlace(_ line: Int, _ column: Int, _ what: String) {
        require(line >= 1 && line <= lines.count, "\(what): line \(line) of \(lines.count)")
        // TOML's parser counts columns in bytes or characters; either way it lies within the line's bytes, plus
        // its line break, plus one more for the end of the text (toml++ places it after the last line's "\n").
        require(column >= 1 && column <= lines[line - 1].count + 2, "\(what): column \(column) on line \(line)")
    }

    let locator = TOMLKeyLocator(text: text)
    for (key, position) in locator.positions {
        checkPlace(position.line, position.column, "key \(key)")
    }

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
            checkPlace(line, problem.column ?? 1, problem.message)
        }
        require((problem.line == nil) == (problem.column == nil), "half a position: \(problem)")
        require(problem.description.hasPrefix(problem.file + ":"), "a problem that does not start with its file: \(problem)")
    }

    // The secrets, when TOML parses and each is a string written exactly once in the text. (toml++ 3.4.0 aborts on
    // what `unsafeForTOMLKit` finds: the loader never hands it such text, and neither may this.)
    if locator.unsafeForTOMLKit == nil, let root = try? TOMLTable(string: text), let provisioning = root["provisioning"]?.table {
        for key in ["device_secret", "token", "password"] {
            guard let secret = provisioning[key]?.string, secret.count >= 4,
                text.components(separatedBy: secret).count == 2
            else { continue }
            for problem in problems {
                require(!problem.message.contains(secret), "[provisioning] \(key) shows in: \(problem)")
            }
        }
    }
    return 0
}
