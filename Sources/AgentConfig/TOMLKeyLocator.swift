/// A line and column in a text file, both 1-based.
struct SourcePosition: Hashable, Sendable {
    var line: Int
    var column: Int
}

/// Finds where each key of a TOML document is written, since TOMLKit's tree carries no positions.
///
/// A small scanner of the TOML text: it follows `[table]` and `[[array]]` headers, dotted and quoted keys, and
/// (best effort) inline tables and arrays, and records the position of the first character of every key path
/// (`sensors[2].debounce`, `device.identity_sources[1]`). It is lenient about malformed input, which TOMLKit reports;
/// it also runs before TOMLKit, to find the mistakes toml++ cannot be given (`unsafeForTOMLKit`).
struct TOMLKeyLocator {
    private(set) var positions: [String: SourcePosition] = [:]
    /// The first mistake on which toml++ 3.4.0 (inside TOMLKit) fails an internal assertion instead of reporting a
    /// parse error: the process aborts (in a release build it is undefined behaviour). Callers report it as a syntax
    /// error and do not hand the text to TOMLKit. Found by fuzzing (`scripts/fuzz.sh config`):
    /// - a table header whose name starts with a character no key can start with: `[é]`, `[[[x]]]`, `[=` (fixed in
    ///   toml++ after 3.4.0: "Fix precondition violation in parse_key");
    /// - a date with `T` but no time after it: `1979-05-27T:00`, `2026-01-01Tx:1`;
    /// - an array element starting with `}` or a Unicode line separator: `a = [}`, `a = [1, }`.
    private(set) var unsafeForTOMLKit: (position: SourcePosition, message: String)?

    init(text: String) {
        var scanner = Scanner(text: text)
        scanner.run()
        self.positions = scanner.positions
        self.unsafeForTOMLKit = scanner.unsafeForTOMLKit
    }

    /// The syntax error to report instead of parsing, when the text is `unsafeForTOMLKit`.
    func unsafeForTOMLKitProblem(file: String) -> ConfigurationProblem? {
        guard let (position, message) = self.unsafeForTOMLKit else { return nil }
        return ConfigurationProblem(
            file: file, line: position.line, column: position.column, keyPath: "", message: "TOML syntax error: " + message)
    }

    /// `'x'`, or `'é' (U+00E9)`, or `U+0001` for an invisible one: a character as a message shows it.
    static func shown(_ c: Unicode.Scalar) -> String {
        let hex = String(c.value, radix: 16, uppercase: true)
        let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        if c.value < 0x20 || c.value == 0x7F { return code }
        return c.value < 0x80 ? "'\(c)'" : "'\(c)' (\(code))"
    }

    /// The position of `path`, else of its nearest ancestor that is written in the file (a missing key is reported
    /// at its table's header).
    func position(of path: KeyPath) -> SourcePosition? {
        var current: KeyPath? = path
        while let candidate = current, !candidate.isEmpty {
            if let found = self.positions[candidate.description] { return found }
            current = candidate.parent
        }
        return nil
    }

    private struct Scanner {
        let chars: [Unicode.Scalar]
        var index = 0
        var line = 1
        var column = 1
        var positions: [String: SourcePosition] = [:]
        /// How many `[[x]]` tables each array-of-tables path has so far.
        var arrayCounts: [String: Int] = [:]
        var unsafeForTOMLKit: (position: SourcePosition, message: String)?

        init(text: String) {
            self.chars = Array(text.unicodeScalars)
            // A byte order mark is not part of the document (toml++ skips it too).
            if self.chars.first == "\u{FEFF}" { self.index = 1 }
        }

        var atEnd: Bool { self.index >= self.chars.count }
        var current: Unicode.Scalar? { self.atEnd ? nil : self.chars[self.index] }
        func peek(_ offset: Int) -> Unicode.Scalar? {
            let i = self.index + offset
            return i < self.chars.count ? self.chars[i] : nil
        }
        var position: SourcePosition { SourcePosition(line: self.line, column: self.column) }

        mutating func advance() {
            guard !self.atEnd else { return }
            if self.chars[self.index] == "\n" {
                self.line += 1
                self.column = 1
            } else {
                self.column += 1
            }
            self.index += 1
        }

        mutating func skipSpaces() {
            while let c = self.current, c == " " || c == "\t" { self.advance() }
        }

        mutating func skipToLineEnd() {
            while let c = self.current, c != "\n" { self.advance() }
        }

        /// Spaces, newlines and comments (inside arrays).
        mutating func skipBlank() {
            while let c = self.current {
                if c == " " || c == "\t" || c == "\n" || c == "\r" {
                    self.advance()
                } else if c == "#" {
                    self.skipToLineEnd()
                } else {
                    return
                }
            }
        }

        mutating func record(_ path: KeyPath, _ position: SourcePosition) {
            let key = path.description
            if self.positions[key] == nil { self.positions[key] = position }
        }

        mutating func run() {
            var table = KeyPath()
            while !self.atEnd {
                self.skipBlank()
                guard let c = self.current else { break }
                if c == "[" {
                    self.checkTableHeader()
                    let isArray = self.peek(1) == "["
                    self.advance()
                    if isArray { self.advance() }
                    self.skipSpaces()
                    let keys = self.parseKey()
                    if !keys.isEmpty {
                        table = self.resolveHeader(keys, isArray: isArray)
                    }
                    self.skipToLineEnd()
                    continue
                }
                let keys = self.parseKey()
                if keys.isEmpty {
                    self.skipToLineEnd()
                    continue
                }
                var path = table
                for (key, position) in keys {
                    path = path.appending(key)
                    self.record(path, position)
                }
                self.skipSpaces()
                guard self.current == "=" else {
                    self.skipToLineEnd()
                    continue
                }
                self.advance()
                self.skipSpaces()
                self.skipValue(path)
                self.skipToLineEnd()
            }
        }

        /// At a header's `[`: notes a key that toml++ 3.4.0 would take to `parse_key` with a character no key can
        /// start with, following its `parse_table_header` (a blank name, `[ [` and the end of the text are errors it
        /// reports itself; anything else that is not a key's first character is caught here).
        mutating func checkTableHeader() {
            guard self.unsafeForTOMLKit == nil else { return }
            var i = self.index + 1
            func skipSpaces() -> Bool {
                let start = i
                while i < self.chars.count, self.chars[i] == " " || self.chars[i] == "\t" { i += 1 }
                return i > start
            }
            let spaced = skipSpaces()
            if i < self.chars.count, self.chars[i] == "[" {
                guard !spaced else { return }
                i += 1
                _ = skipSpaces()
            }
            guard i < self.chars.count else { return }
            let c = self.chars[i]
            let startsKey = ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
                || c == "_" || c == "-" || c == "\"" || c == "'"
            guard !startsKey, c != "]" else { return }
            // Only spaces, tabs and brackets lie between: the same line.
            self.unsafeForTOMLKit = (
                SourcePosition(line: self.line, column: self.column + (i - self.index)),
                "a table name must start with a letter, a digit, _, - or a quote, saw \(TOMLKeyLocator.shown(c)) "
                    + "(quote names with other characters: [\"name\"])"
            )
        }

        /// At the start of a bare value: notes a date followed by `T` and no digit, which toml++ 3.4.0 takes to
        /// `parse_time` without a digit to start it. Valid TOML never has it (`T` starts the time of a date-time).
        mutating func checkBareValue() {
            guard self.unsafeForTOMLKit == nil, self.index + 11 <= self.chars.count else { return }
            let digit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
            let shape: [(Unicode.Scalar) -> Bool] = [
                digit, digit, digit, digit, { $0 == "-" }, digit, digit, { $0 == "-" }, digit, digit, { $0 == "T" || $0 == "t" },
            ]
            for (offset, matches) in shape.enumerated() where !matches(self.chars[self.index + offset]) { return }
            if let next = self.peek(11), digit(next) { return }
            self.unsafeForTOMLKit = (
                SourcePosition(line: self.line, column: self.column + 11),
                "a date-time needs a time after '\(self.chars[self.index + 10])', like 1979-05-27T07:32:00Z"
            )
        }

        /// The table path a header opens, with the index of every array of tables on the way.
        mutating func resolveHeader(_ keys: [(String, SourcePosition)], isArray: Bool) -> KeyPath {
            var path = KeyPath()
            for (offset, (key, position)) in keys.enumerated() {
                path = path.appending(key)
                let isLast = offset == keys.count - 1
                if isLast && isArray {
                    let count = self.arrayCounts[path.description, default: 0]
                    self.arrayCounts[path.description] = count + 1
                    self.record(path, position)
                    path = path.appending(index: count)
                    self.record(path, position)
                } else {
                    if let count = self.arrayCounts[path.description], count > 0 {
                        path = path.appending(index: count - 1)
                    }
                    if isLast { self.record(path, position) }
                }
            }
            return path
        }

        /// A dotted key, each part with its position; empty when there is no key here.
        mutating func parseKey() -> [(String, SourcePosition)] {
            var keys: [(String, SourcePosition)] = []
            while true {
                let start = self.position
                guard let key = self.parseSimpleKey() else { return keys }
                keys.append((key, start))
                self.skipSpaces()
                guard self.current == "." else { return keys }
                self.advance()
                self.skipSpaces()
            }
        }

        mutating func parseSimpleKey() -> String? {
            guard let c = self.current else { return nil }
            if c == "\"" {
                self.advance()
                var key = ""
                while let ch = self.current, ch != "\"", ch != "\n" {
                    if ch == "\\" {
                        self.advance()
                        guard let escaped = self.current else { break }
                        switch escaped {
                        case "n": key += "\n"
                        case "t": key += "\t"
                        case "u", "U":
                            let length = escaped == "u" ? 4 : 8
                            var hex = ""
                            for _ in 0..<length {
                                self.advance()
                                if let h = self.current { hex.unicodeScalars.append(h) }
                            }
                            if let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) {
                                key.unicodeScalars.append(scalar)
                            }
                        default: key.unicodeScalars.append(escaped)
                        }
                        self.advance()
                        continue
                    }
                    key.unicodeScalars.append(ch)
                    self.advance()
                }
                if self.current == "\"" { self.advance() }
                return key
            }
            if c == "'" {
                self.advance()
                var key = ""
                while let ch = self.current, ch != "'", ch != "\n" {
                    key.unicodeScalars.append(ch)
                    self.advance()
                }
                if self.current == "'" { self.advance() }
                return key
            }
            var key = ""
            while let ch = self.current,
                ("a"..."z").contains(ch) || ("A"..."Z").contains(ch) || ("0"..."9").contains(ch) || ch == "_" || ch == "-"
            {
                key.unicodeScalars.append(ch)
                self.advance()
            }
            return key.isEmpty ? nil : key
        }

        mutating func skipString() {
            guard let quote = self.current else { return }
            let triple = self.peek(1) == quote && self.peek(2) == quote
            if triple {
                self.advance()
                self.advance()
                self.advance()
                while !self.atEnd {
                    if quote == "\"" && self.current == "\\" {
                        self.advance()
                        self.advance()
                        continue
                    }
                    if self.current == quote && self.peek(1) == quote && self.peek(2) == quote {
                        self.advance()
                        self.advance()
                        self.advance()
                        // Up to two more quotes may belong to the string's content.
                        while self.current == quote { self.advance() }
                        return
                    }
                    self.advance()
                }
                return
            }
            self.advance()
            while let ch = self.current, ch != "\n" {
                if quote == "\"" && ch == "\\" {
                    self.advance()
                    self.advance()
                    continue
                }
                self.advance()
                if ch == quote { return }
            }
        }

        /// toml++ refuses values nested deeper than this (`TOML_MAX_NESTED_VALUES`): no position deeper is needed.
        static let maxDepth = 256

        mutating func skipValue(_ path: KeyPath, depth: Int = 0) {
            // Without a bound, `a = [[[[…` a few thousand deep overflowed the stack (found by fuzzing).
            guard depth < Self.maxDepth else {
                self.skipToLineEnd()
                return
            }
            guard let c = self.current else { return }
            switch c {
            case "\"", "'":
                self.skipString()
            case "[":
                self.advance()
                var element = 0
                while !self.atEnd {
                    self.skipBlank()
                    guard let ch = self.current else { return }
                    if ch == "]" {
                        self.advance()
                        return
                    }
                    // toml++ 3.4.0 hands these to parse_value, which asserts that a value does not start with them.
                    if self.unsafeForTOMLKit == nil, ch == "}" || ch == "\u{85}" || ch == "\u{2028}" || ch == "\u{2029}" {
                        self.unsafeForTOMLKit = (
                            self.position, "expected a value or ']' in the array, saw \(TOMLKeyLocator.shown(ch))"
                        )
                    }
                    let before = self.index
                    let elementPath = path.appending(index: element)
                    self.record(elementPath, self.position)
                    self.skipValue(elementPath, depth: depth + 1)
                    self.skipBlank()
                    if self.current == "," {
                        self.advance()
                        element += 1
                    } else if self.current != "]" && self.index == before {
                        self.advance()  // malformed: make progress
                    }
                }
            case "{":
                self.advance()
                while !self.atEnd {
                    self.skipSpaces()
                    guard let ch = self.current, ch != "\n" else { return }
                    if ch == "}" {
                        self.advance()
                        return
                    }
                    let keys = self.parseKey()
                    if keys.isEmpty {
                        self.advance()
                        continue
                    }
                    var inner = path
                    for (key, position) in keys {
                        inner = inner.appending(key)
                        self.record(inner, position)
                    }
                    self.skipSpaces()
                    if self.current == "=" {
                        self.advance()
                        self.skipSpaces()
                        self.skipValue(inner, depth: depth + 1)
                    }
                    self.skipSpaces()
                    if self.current == "," { self.advance() }
                }
            default:
                self.checkBareValue()
                while let ch = self.current, ch != ",", ch != "]", ch != "}", ch != "\n", ch != "#" {
                    self.advance()
                }
            }
        }
    }
}
