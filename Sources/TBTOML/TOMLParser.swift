/// A TOML 1.0 reader (https://toml.io/en/v1.0.0): text in, an ordered tree of positioned values out, or a
/// `TOMLError` with the line and column of the first mistake.
///
/// It never traps on any input: the text must be valid UTF-8, nesting (tables, arrays, inline tables) is bounded
/// by `maxDepth`, the text by `maxBytes`, and every number is checked for overflow.
public enum TOMLParser {
    /// Arrays and tables nest at most this deep by default.
    public static let defaultMaxDepth = 128
    /// Texts longer than this (16 MiB) are refused by default.
    public static let defaultMaxBytes = 16 << 20

    /// Parses `text` into its root table.
    public static func parse(
        _ text: String, maxDepth: Int = defaultMaxDepth, maxBytes: Int = defaultMaxBytes
    ) throws(TOMLError) -> TOMLTable {
        try self.parse(bytes: Array(text.utf8), maxDepth: maxDepth, maxBytes: maxBytes)
    }

    /// Parses UTF-8 `bytes` into their root table; text that is not UTF-8 is refused at its first bad byte.
    public static func parse(
        bytes: [UInt8], maxDepth: Int = defaultMaxDepth, maxBytes: Int = defaultMaxBytes
    ) throws(TOMLError) -> TOMLTable {
        guard bytes.count <= maxBytes else {
            throw TOMLError(
                position: TOMLPosition(line: 1, column: 1),
                message: "the document is \(bytes.count) bytes long; at most \(maxBytes) bytes are read")
        }
        if let bad = UTF8Check.firstInvalid(bytes) {
            throw TOMLError(
                position: UTF8Check.position(of: bad, in: bytes),
                message: "not UTF-8 text (byte 0x\(self.hex(UInt32(bytes[bad]), digits: 2))); a TOML document "
                    + "must be UTF-8")
        }
        var reader = Reader(bytes: bytes, maxDepth: max(1, maxDepth))
        return try reader.parseDocument()
    }

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
    }

    static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    /// `'x'`, `'é' (U+00E9)`, `U+0001` for an invisible character: a character as messages show it.
    static func shown(_ scalar: Unicode.Scalar) -> String {
        let code = "U+" + self.hex(scalar.value, digits: 4)
        switch scalar.value {
        case 0x0A: return "the end of the line"
        case 0x09: return "a tab"
        case 0x20: return "a space"
        case 0x0D: return "a carriage return (U+000D)"
        case 0..<0x20, 0x7F: return code
        case 0x21..<0x7F: return "'\(scalar)'"
        default: return "'\(scalar)' (\(code))"
        }
    }

    /// "an integer", "a local date": a type name with its article.
    static func withArticle(_ name: String) -> String {
        guard let first = name.utf8.first else { return name }
        return ([UInt8(ascii: "a"), UInt8(ascii: "e"), UInt8(ascii: "i"), UInt8(ascii: "o")].contains(first) ? "an " : "a ")
            + name
    }
}

/// UTF-8 validation: overlong forms, surrogates and code points above U+10FFFF are refused.
enum UTF8Check {
    static func firstInvalid(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                high = 0x9F
            case 0xF0:
                length = 4
                low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                high = 0x8F
            default: return i
            }
            for k in 1..<length {
                guard i + k < n else { return i }
                let b = bytes[i + k]
                // The sequence is refused at its first byte.
                if k == 1 {
                    guard b >= low && b <= high else { return i }
                } else {
                    guard b >= 0x80 && b <= 0xBF else { return i }
                }
            }
            i += length
        }
        return nil
    }

    /// The line and column of byte `offset` (everything before it being valid UTF-8).
    static func position(of offset: Int, in bytes: [UInt8]) -> TOMLPosition {
        var line = 1
        var column = 1
        var i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) && offset >= 3 ? 3 : 0
        while i < offset && i < bytes.count {
            if bytes[i] == 0x0A {
                line += 1
                column = 1
            } else if bytes[i] & 0xC0 != 0x80 {
                column += 1
            }
            i += 1
        }
        return TOMLPosition(line: line, column: column)
    }
}

// ASCII bytes by name.
private let lf: UInt8 = 0x0A
private let cr: UInt8 = 0x0D
private let tab: UInt8 = 0x09
private let space: UInt8 = 0x20
private let quote: UInt8 = 0x22
private let apostrophe: UInt8 = 0x27
private let hash: UInt8 = 0x23
private let plus: UInt8 = 0x2B
private let comma: UInt8 = 0x2C
private let minus: UInt8 = 0x2D
private let dot: UInt8 = 0x2E
private let colon: UInt8 = 0x3A
private let equals: UInt8 = 0x3D
private let openBracket: UInt8 = 0x5B
private let backslash: UInt8 = 0x5C
private let closeBracket: UInt8 = 0x5D
private let underscore: UInt8 = 0x5F
private let openBrace: UInt8 = 0x7B
private let closeBrace: UInt8 = 0x7D

private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
private func isHexDigit(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
}
private func hexValue(_ b: UInt8) -> UInt32 {
    if isDigit(b) { return UInt32(b - 0x30) }
    if b >= 0x61 { return UInt32(b - 0x61 + 10) }
    return UInt32(b - 0x41 + 10)
}
/// A control character TOML does not allow unescaped (tab is allowed).
private func isControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == 0x7F }
/// The characters of a bare value: numbers, booleans, dates and times (and the mistakes near them).
private func isTokenByte(_ b: UInt8) -> Bool {
    TOMLParser.isBareKeyByte(b) || b == plus || b == dot || b == colon
}

/// One parse of one document.
private struct Reader {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    var line = 1
    var column = 1
    /// The key being read, for error messages.
    var context: [TOMLPathComponent] = []
    var builder = TableBuilder()

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    // MARK: moving

    var current: UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

    func byte(_ offset: Int) -> UInt8? {
        let i = self.index + offset
        return i < self.bytes.count ? self.bytes[i] : nil
    }

    var position: TOMLPosition { TOMLPosition(line: self.line, column: self.column) }

    mutating func advance() {
        guard self.index < self.bytes.count else { return }
        let b = self.bytes[self.index]
        self.index += 1
        if b == lf {
            self.line += 1
            self.column = 1
        } else if b & 0xC0 != 0x80 {
            self.column += 1
        }
    }

    mutating func advance(_ count: Int) {
        for _ in 0..<count { self.advance() }
    }

    func error(_ message: String, at position: TOMLPosition? = nil) -> TOMLError {
        TOMLError(position: position ?? self.position, keyPath: self.context, message: message)
    }

    /// The character here, as messages show it.
    var shownCurrent: String {
        guard self.index < self.bytes.count else { return "the end of the file" }
        return TOMLParser.shown(self.scalar(at: self.index))
    }

    /// The Unicode scalar starting at byte `i` (the text is valid UTF-8).
    func scalar(at i: Int) -> Unicode.Scalar {
        let b0 = self.bytes[i]
        var value: UInt32
        var length: Int
        switch b0 {
        case 0..<0x80: return Unicode.Scalar(b0)
        case 0xC0..<0xE0:
            value = UInt32(b0 & 0x1F)
            length = 2
        case 0xE0..<0xF0:
            value = UInt32(b0 & 0x0F)
            length = 3
        default:
            value = UInt32(b0 & 0x07)
            length = 4
        }
        for k in 1..<length where i + k < self.bytes.count {
            value = value << 6 | UInt32(self.bytes[i + k] & 0x3F)
        }
        return Unicode.Scalar(value) ?? "\u{FFFD}"
    }

    mutating func skipSpaces() {
        while let b = self.current, b == space || b == tab { self.advance() }
    }

    /// Spaces, line breaks and comments (between array elements).
    mutating func skipTrivia() throws(TOMLError) {
        while let b = self.current {
            switch b {
            case space, tab, lf: self.advance()
            case cr:
                guard self.byte(1) == lf else { throw self.error("a carriage return (U+000D) must be followed by a line feed") }
                self.advance(2)
            case hash: try self.skipComment()
            default: return
            }
        }
    }

    /// At `#`: the comment up to (not including) the line break.
    mutating func skipComment() throws(TOMLError) {
        self.advance()
        while let b = self.current {
            if b == lf || (b == cr && self.byte(1) == lf) { return }
            if isControl(b) {
                throw self.error("control character \(TOMLParser.shown(Unicode.Scalar(b))) is not allowed in a comment")
            }
            self.advance()
        }
    }

    /// Spaces, a comment, then a line break or the end of the file.
    mutating func expectLineEnd(after what: String) throws(TOMLError) {
        self.skipSpaces()
        if self.current == hash { try self.skipComment() }
        guard let b = self.current else { return }
        if b == lf {
            self.advance()
            return
        }
        if b == cr && self.byte(1) == lf {
            self.advance(2)
            return
        }
        if b == cr { throw self.error("a carriage return (U+000D) must be followed by a line feed") }
        throw self.error("expected the end of the line after \(what), saw \(self.shownCurrent)")
    }

    // MARK: document

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        if self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { self.index = 3 }
        while true {
            self.skipSpaces()
            guard let b = self.current else { break }
            switch b {
            case hash, lf, cr:
                try self.expectLineEnd(after: "a comment")
            case openBracket:
                try self.parseHeader()
                try self.expectLineEnd(after: "the table header")
            default:
                try self.parseKeyValue()
                try self.expectLineEnd(after: "the value")
            }
        }
        return self.builder.finish()
    }

    /// `[a.b]` or `[[a.b]]`.
    mutating func parseHeader() throws(TOMLError) {
        self.context = []
        self.advance()
        let isArray = self.current == openBracket
        if isArray { self.advance() }
        self.skipSpaces()
        let keys = try self.parseKey(header: true)
        self.skipSpaces()
        let name = "[" + (isArray ? "[" : "") + TOMLPathComponent.render(keys.map { .key($0.key) })
        guard self.current == closeBracket else {
            throw self.error("expected ']' to close the table header \(name), saw \(self.shownCurrent)")
        }
        self.advance()
        if isArray {
            guard self.current == closeBracket else {
                throw self.error("expected ']]' to close the header \(name)]], saw \(self.shownCurrent)")
            }
            self.advance()
        }
        do {
            try self.builder.openSection(keys, isArray: isArray, maxDepth: self.maxDepth)
        } catch {
            throw TOMLError(position: error.position, keyPath: error.path, message: error.message)
        }
        self.context = self.builder.sectionPath
    }

    /// `key = value` in the current table.
    mutating func parseKeyValue() throws(TOMLError) {
        self.context = self.builder.sectionPath
        let keys = try self.parseKey(header: false)
        self.context = self.builder.sectionPath + keys.map { .key($0.key) }
        self.skipSpaces()
        guard self.current == equals else { throw self.error("expected '=' after the key, saw \(self.shownCurrent)") }
        self.advance()
        self.skipSpaces()
        let value = try self.parseValue(depth: self.builder.sectionDepth + keys.count, inArray: false)
        do {
            try self.builder.insert(keys, value, in: self.builder.section, scope: self.builder.scope,
                                    path: self.builder.sectionPath, maxDepth: self.maxDepth)
        } catch {
            throw TOMLError(position: error.position, keyPath: self.context, message: error.message)
        }
    }

    // MARK: keys

    /// A dotted key: each part with the position of its first character.
    mutating func parseKey(header: Bool) throws(TOMLError) -> [(key: String, position: TOMLPosition)] {
        var parts: [(key: String, position: TOMLPosition)] = []
        while true {
            let start = self.position
            let key = try self.parseSimpleKey(header: header, first: parts.isEmpty)
            parts.append((key, start))
            self.skipSpaces()
            guard self.current == dot else { return parts }
            self.advance()
            self.skipSpaces()
        }
    }

    mutating func parseSimpleKey(header: Bool, first: Bool) throws(TOMLError) -> String {
        guard let b = self.current else {
            throw self.error(first ? "expected a key, saw the end of the file" : "expected a key after '.', saw the end of the file")
        }
        if b == quote || b == apostrophe {
            if self.byte(1) == b && self.byte(2) == b {
                throw self.error("a key cannot be a multi-line string")
            }
            return b == quote ? try self.parseBasicString() : try self.parseLiteralString()
        }
        if TOMLParser.isBareKeyByte(b) {
            let start = self.index
            while let c = self.current, TOMLParser.isBareKeyByte(c) { self.advance() }
            return String(decoding: self.bytes[start..<self.index], as: UTF8.self)
        }
        if !first { throw self.error("expected a key after '.', saw \(self.shownCurrent)") }
        if header {
            throw self.error(
                "a table name must start with a letter, a digit, _, - or a quote, saw \(self.shownCurrent) "
                    + "(quote names with other characters: [\"name\"])")
        }
        throw self.error("expected a key (letters, digits, _ and -, or a quoted key), saw \(self.shownCurrent)")
    }

    // MARK: values

    mutating func parseValue(depth: Int, inArray: Bool) throws(TOMLError) -> TOMLValue {
        let start = self.position
        guard let b = self.current else { throw self.error("expected a value, saw the end of the file") }
        switch b {
        case quote:
            if self.byte(1) == quote && self.byte(2) == quote {
                return TOMLValue(.string(try self.parseMultilineString(literal: false)), at: start)
            }
            return TOMLValue(.string(try self.parseBasicString()), at: start)
        case apostrophe:
            if self.byte(1) == apostrophe && self.byte(2) == apostrophe {
                return TOMLValue(.string(try self.parseMultilineString(literal: true)), at: start)
            }
            return TOMLValue(.string(try self.parseLiteralString()), at: start)
        case openBracket:
            return try self.parseArray(depth: depth)
        case openBrace:
            return try self.parseInlineTable(depth: depth)
        default:
            guard isTokenByte(b) else {
                throw self.error(
                    inArray ? "expected a value or ']' in the array, saw \(self.shownCurrent)"
                        : "expected a value, saw \(self.shownCurrent)")
            }
            return try self.parseBareValue()
        }
    }

    mutating func checkDepth(_ depth: Int) throws(TOMLError) {
        if depth > self.maxDepth {
            throw self.error("arrays and tables nest deeper than \(self.maxDepth) levels")
        }
    }

    mutating func parseArray(depth: Int) throws(TOMLError) -> TOMLValue {
        let start = self.position
        try self.checkDepth(depth)
        self.advance()
        var items: [TOMLValue] = []
        while true {
            try self.skipTrivia()
            if self.current == closeBracket {
                self.advance()
                return TOMLValue(.array(items), at: start)
            }
            self.context.append(.index(items.count))
            let item = try self.parseValue(depth: depth + 1, inArray: true)
            self.context.removeLast()
            items.append(item)
            try self.skipTrivia()
            switch self.current {
            case comma:
                self.advance()
            case closeBracket:
                self.advance()
                return TOMLValue(.array(items), at: start)
            case nil:
                throw self.error("the array opened at \(start) has no closing ']'")
            default:
                throw self.error("expected ',' or ']' after an array element, saw \(self.shownCurrent)")
            }
        }
    }

    mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        let start = self.position
        try self.checkDepth(depth)
        self.advance()
        let (node, scope) = self.builder.newInlineTable(at: start, depth: depth)
        let outer = self.context
        self.skipSpaces()
        if self.current == closeBrace {
            self.advance()
            return TOMLValue(.table(self.builder.table(node)), at: start)
        }
        while true {
            self.context = outer
            let keys = try self.parseKey(header: false)
            self.context = outer + keys.map { .key($0.key) }
            self.skipSpaces()
            guard self.current == equals else { throw self.error("expected '=' after the key, saw \(self.shownCurrent)") }
            self.advance()
            self.skipSpaces()
            let value = try self.parseValue(depth: depth + keys.count, inArray: false)
            do {
                try self.builder.insert(keys, value, in: node, scope: scope, path: outer, maxDepth: self.maxDepth)
            } catch {
                throw TOMLError(position: error.position, keyPath: self.context, message: error.message)
            }
            self.context = outer
            self.skipSpaces()
            switch self.current {
            case comma:
                self.advance()
                self.skipSpaces()
                if self.current == closeBrace {
                    throw self.error("a comma cannot follow the last key of an inline table (TOML 1.0)")
                }
            case closeBrace:
                self.advance()
                return TOMLValue(.table(self.builder.table(node)), at: start)
            case lf, cr:
                throw self.error("an inline table must be written on one line (TOML 1.0); use a [table] for more")
            case nil:
                throw self.error("the inline table opened at \(start) has no closing '}'")
            default:
                throw self.error("expected ',' or '}' in the inline table, saw \(self.shownCurrent)")
            }
        }
    }

    // MARK: strings

    /// At `"`: a basic string on one line, with escapes.
    mutating func parseBasicString() throws(TOMLError) -> String {
        let start = self.position
        self.advance()
        var out: [UInt8] = []
        while true {
            guard let b = self.current else { throw self.error("the string opened at \(start) has no closing quote") }
            switch b {
            case quote:
                self.advance()
                return String(decoding: out, as: UTF8.self)
            case backslash:
                try self.parseEscape(into: &out)
            case lf, cr:
                throw self.error(
                    "the string opened at \(start) has no closing quote on its line (a \"…\" string is one line; "
                        + "use \"\"\"…\"\"\" for several)")
            default:
                if isControl(b) {
                    throw self.error(
                        "control character \(TOMLParser.shown(Unicode.Scalar(b))) must be escaped in a string")
                }
                out.append(b)
                self.advance()
            }
        }
    }

    /// At `'`: a literal string on one line, no escapes.
    mutating func parseLiteralString() throws(TOMLError) -> String {
        let start = self.position
        self.advance()
        let from = self.index
        while true {
            guard let b = self.current else { throw self.error("the string opened at \(start) has no closing quote") }
            if b == apostrophe {
                let text = String(decoding: self.bytes[from..<self.index], as: UTF8.self)
                self.advance()
                return text
            }
            if b == lf || b == cr {
                throw self.error(
                    "the string opened at \(start) has no closing quote on its line (a '…' string is one line; "
                        + "use '''…''' for several)")
            }
            if isControl(b) {
                throw self.error("control character \(TOMLParser.shown(Unicode.Scalar(b))) is not allowed in a literal string")
            }
            self.advance()
        }
    }

    /// At `"""` or `'''`.
    mutating func parseMultilineString(literal: Bool) throws(TOMLError) -> String {
        let start = self.position
        let delimiter = literal ? apostrophe : quote
        self.advance(3)
        // A line break right after the opening delimiter is not part of the string.
        if self.current == lf {
            self.advance()
        } else if self.current == cr && self.byte(1) == lf {
            self.advance(2)
        }
        var out: [UInt8] = []
        while true {
            guard let b = self.current else { throw self.error("the multi-line string opened at \(start) is not closed") }
            switch b {
            case delimiter:
                var run = 0
                while self.byte(run) == delimiter { run += 1 }
                if run >= 3 {
                    if run > 5 {
                        throw self.error(
                            "too many quotes: a multi-line string ends with at most five (two in the string, three to close it)")
                    }
                    out.append(contentsOf: repeatElement(delimiter, count: run - 3))
                    self.advance(run)
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(delimiter, count: run))
                self.advance(run)
            case backslash where !literal:
                if self.isLineEndingBackslash() {
                    self.advance()
                    while let c = self.current, c == space || c == tab || c == lf || (c == cr && self.byte(1) == lf) {
                        self.advance()
                    }
                } else {
                    try self.parseEscape(into: &out)
                }
            case lf:
                out.append(lf)
                self.advance()
            case cr:
                guard self.byte(1) == lf else {
                    throw self.error("a carriage return (U+000D) must be followed by a line feed")
                }
                out.append(lf)
                self.advance(2)
            default:
                if isControl(b) {
                    throw self.error(
                        "control character \(TOMLParser.shown(Unicode.Scalar(b))) "
                            + (literal ? "is not allowed in a literal string" : "must be escaped in a string"))
                }
                out.append(b)
                self.advance()
            }
        }
    }

    /// A `\` followed by nothing but spaces up to the end of its line.
    func isLineEndingBackslash() -> Bool {
        var k = 1
        while let c = self.byte(k), c == space || c == tab { k += 1 }
        return self.byte(k) == lf || (self.byte(k) == cr && self.byte(k + 1) == lf)
    }

    /// At `\` in a basic string.
    mutating func parseEscape(into out: inout [UInt8]) throws(TOMLError) {
        let start = self.position
        self.advance()
        guard let e = self.current else { throw self.error("the escape at \(start) is not finished") }
        let simple: UInt8?
        switch e {
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "t"): simple = tab
        case UInt8(ascii: "n"): simple = lf
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "r"): simple = cr
        case quote: simple = quote
        case backslash: simple = backslash
        case UInt8(ascii: "u"), UInt8(ascii: "U"): simple = nil
        default:
            throw self.error(
                "\\\(TOMLParser.shown(self.scalar(at: self.index))) is not an escape; TOML has \\b \\t \\n \\f \\r \\\" "
                    + "\\\\ \\uXXXX and \\UXXXXXXXX (write \\\\ for a backslash)",
                at: start)
        }
        if let simple {
            out.append(simple)
            self.advance()
            return
        }
        let digits = e == UInt8(ascii: "u") ? 4 : 8
        self.advance()
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let h = self.current, isHexDigit(h) else {
                throw self.error(
                    "\\\(e == UInt8(ascii: "u") ? "u" : "U") needs \(digits) hexadecimal digits, saw \(self.shownCurrent)")
            }
            value = value << 4 | hexValue(h)
            self.advance()
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw self.error(
                "U+\(TOMLParser.hex(value, digits: 4)) is not a Unicode scalar value (a surrogate, or above U+10FFFF)",
                at: start)
        }
        out.append(contentsOf: String(scalar).utf8)
    }

    // MARK: numbers, booleans, dates and times

    /// A bare value: its characters are read as one token (with the space of `1979-05-27 07:32:00`), then
    /// classified.
    mutating func parseBareValue() throws(TOMLError) -> TOMLValue {
        let start = self.position
        let from = self.index
        while let b = self.current, isTokenByte(b) { self.advance() }
        // A date, a space, and a time: one value.
        if self.index - from == 10, self.isDate(from), self.current == space, let h1 = self.byte(1), isDigit(h1),
            let h2 = self.byte(2), isDigit(h2), self.byte(3) == colon
        {
            self.advance()
            while let b = self.current, isTokenByte(b) { self.advance() }
        }
        let token = Array(self.bytes[from..<self.index])
        var scanner = TokenScanner(token: token, start: start, context: self.context)
        return TOMLValue(try scanner.value(), at: start)
    }

    func isDate(_ from: Int) -> Bool {
        let b = self.bytes
        return isDigit(b[from]) && isDigit(b[from + 1]) && isDigit(b[from + 2]) && isDigit(b[from + 3])
            && b[from + 4] == minus && isDigit(b[from + 5]) && isDigit(b[from + 6]) && b[from + 7] == minus
            && isDigit(b[from + 8]) && isDigit(b[from + 9])
    }
}

/// Reads one bare token (ASCII only, so a character's column is the token's column plus its offset).
private struct TokenScanner {
    let token: [UInt8]
    let start: TOMLPosition
    let context: [TOMLPathComponent]
    var k = 0

    init(token: [UInt8], start: TOMLPosition, context: [TOMLPathComponent]) {
        self.token = token
        self.start = start
        self.context = context
    }

    var text: String { String(decoding: self.token, as: UTF8.self) }
    var current: UInt8? { self.k < self.token.count ? self.token[self.k] : nil }
    func at(_ offset: Int) -> UInt8? { offset < self.token.count ? self.token[offset] : nil }

    func error(_ message: String, at offset: Int? = nil) -> TOMLError {
        TOMLError(
            position: TOMLPosition(line: self.start.line, column: self.start.column + (offset ?? self.k)),
            keyPath: self.context, message: message)
    }

    var shownCurrent: String {
        guard let b = self.current else { return "the end of the value" }
        return b == space ? "a space" : TOMLParser.shown(Unicode.Scalar(b))
    }

    mutating func value() throws(TOMLError) -> TOMLValue.Kind {
        switch self.text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan": return .float(.nan)
        case "-nan": return .float(-.nan)
        default: break
        }
        let t = self.token
        if t.count >= 5, isDigit(t[0]), isDigit(t[1]), isDigit(t[2]), isDigit(t[3]), t[4] == minus {
            return try self.dateOrDateTime()
        }
        if t.count >= 3, isDigit(t[0]), isDigit(t[1]), t[2] == colon {
            let time = try self.time()
            guard self.current == nil else {
                throw self.error("unexpected \(self.shownCurrent) after the local time \(time)")
            }
            return .localTime(time)
        }
        guard let first = t.first, isDigit(first) || first == plus || first == minus else {
            if let first = t.first, (first >= 0x41 && first <= 0x5A) || (first >= 0x61 && first <= 0x7A) {
                throw self.error(
                    "'\(self.text)' is not a value: strings need quotes (\"\(self.text)\"), booleans are true or false")
            }
            throw self.error("'\(self.text)' is not a value")
        }
        return try self.number()
    }

    // MARK: numbers

    /// Digits (of `radix`) with single underscores between them, from `k`; their value is not computed.
    mutating func digitRun(radix: Int, what: String) throws(TOMLError) -> [UInt8] {
        var digits: [UInt8] = []
        guard let first = self.current, Self.isRadixDigit(first, radix: radix) else {
            throw self.error("expected \(what), saw \(self.shownCurrent)")
        }
        digits.append(first)
        self.k += 1
        while let b = self.current {
            if Self.isRadixDigit(b, radix: radix) {
                digits.append(b)
                self.k += 1
            } else if b == underscore {
                guard let next = self.at(self.k + 1), Self.isRadixDigit(next, radix: radix) else {
                    throw self.error("an underscore in a number must be between two digits")
                }
                self.k += 1
            } else {
                break
            }
        }
        return digits
    }

    static func isRadixDigit(_ b: UInt8, radix: Int) -> Bool {
        switch radix {
        case 2: return b == 0x30 || b == 0x31
        case 8: return b >= 0x30 && b <= 0x37
        case 16: return isHexDigit(b)
        default: return b >= 0x30 && b <= 0x39
        }
    }

    mutating func number() throws(TOMLError) -> TOMLValue.Kind {
        var negative = false
        var signed = false
        if let b = self.current, b == plus || b == minus {
            negative = b == minus
            signed = true
            self.k += 1
        }
        if self.current == 0x30, let p = self.at(self.k + 1), p == UInt8(ascii: "x") || p == UInt8(ascii: "o") || p == UInt8(ascii: "b") {
            let radix = p == UInt8(ascii: "x") ? 16 : p == UInt8(ascii: "o") ? 8 : 2
            let name = radix == 16 ? "hexadecimal" : radix == 8 ? "octal" : "binary"
            if signed { throw self.error("a \(name) integer cannot have a sign", at: 0) }
            self.k += 2
            let digits = try self.digitRun(radix: radix, what: "a \(name) digit")
            try self.expectEnd("\(name) integer")
            var value: Int64 = 0
            for d in digits {
                let (shifted, o1) = value.multipliedReportingOverflow(by: Int64(radix))
                let (sum, o2) = shifted.addingReportingOverflow(Int64(hexValue(d)))
                if o1 || o2 { throw self.error("\(self.text) does not fit in a 64-bit signed integer", at: 0) }
                value = sum
            }
            return .integer(value)
        }
        let intStart = self.k
        let intDigits = try self.digitRun(radix: 10, what: "a digit")
        if intDigits.count > 1 && intDigits[0] == 0x30 {
            throw self.error("a number cannot start with a zero (leading zeros are not allowed)", at: intStart)
        }
        var fraction: [UInt8] = []
        var exponent: [UInt8]? = nil
        if self.current == dot {
            self.k += 1
            fraction = try self.digitRun(radix: 10, what: "a digit after the decimal point")
        }
        if let e = self.current, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            self.k += 1
            var exp: [UInt8] = []
            if let s = self.current, s == plus || s == minus {
                exp.append(s)
                self.k += 1
            }
            exp += try self.digitRun(radix: 10, what: "a digit in the exponent")
            exponent = exp
        }
        let isFloat = exponent != nil || !fraction.isEmpty
        try self.expectEnd(isFloat ? "float" : "integer")
        if !isFloat {
            // Accumulated negatively, so that -9223372036854775808 fits.
            var value: Int64 = 0
            for d in intDigits {
                let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = shifted.subtractingReportingOverflow(Int64(d - 0x30))
                if o1 || o2 { throw self.error("\(self.text) does not fit in a 64-bit signed integer", at: 0) }
                value = sum
            }
            if !negative {
                guard value != Int64.min else {
                    throw self.error("\(self.text) does not fit in a 64-bit signed integer", at: 0)
                }
                value = -value
            }
            return .integer(value)
        }
        var literal: [UInt8] = negative ? [minus] : []
        literal += intDigits
        if !fraction.isEmpty { literal += [dot] + fraction }
        if let exponent { literal += [UInt8(ascii: "e")] + exponent }
        guard let value = Double(String(decoding: literal, as: UTF8.self)) else {
            throw self.error("\(self.text) is not a valid float", at: 0)
        }
        guard value.isFinite else {
            throw self.error("\(self.text) is too large for a 64-bit float", at: 0)
        }
        return .float(value)
    }

    mutating func expectEnd(_ what: String) throws(TOMLError) {
        guard self.current == nil else {
            if self.current == dot {
                throw self.error("unexpected '.' in the \(what) \(self.text)")
            }
            throw self.error("unexpected \(self.shownCurrent) in the \(what) \(self.text)")
        }
    }

    // MARK: dates and times

    /// Exactly `count` digits from `k`.
    mutating func fixedDigits(_ count: Int, _ what: String) throws(TOMLError) -> Int {
        var value = 0
        for i in 0..<count {
            guard let b = self.current, isDigit(b) else {
                throw self.error("\(what) has \(count) digits, saw \(self.shownCurrent)" + (i == 0 ? "" : " after \(i)"))
            }
            value = value * 10 + Int(b - 0x30)
            self.k += 1
        }
        return value
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(TOMLError) {
        guard self.current == byte else { throw self.error("expected \(what), saw \(self.shownCurrent)") }
        self.k += 1
    }

    mutating func dateOrDateTime() throws(TOMLError) -> TOMLValue.Kind {
        let year = try self.fixedDigits(4, "a year")
        try self.expect(minus, "'-' after the year (dates are YYYY-MM-DD)")
        let monthAt = self.k
        let month = try self.fixedDigits(2, "a month")
        try self.expect(minus, "'-' after the month (dates are YYYY-MM-DD)")
        let dayAt = self.k
        let day = try self.fixedDigits(2, "a day")
        guard (1...12).contains(month) else { throw self.error("month \(month) does not exist (1 to 12)", at: monthAt) }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard day >= 1 && day <= days else {
            throw self.error("day \(day) does not exist in \(TOMLDate.digits(year, 4))-\(TOMLDate.digits(month, 2)) (1 to \(days))", at: dayAt)
        }
        let date = TOMLDate(year: year, month: month, day: day)
        guard let separator = self.current else { return .localDate(date) }
        guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == space else {
            throw self.error("unexpected \(self.shownCurrent) after the date \(date)")
        }
        self.k += 1
        guard let next = self.current, isDigit(next) else {
            throw self.error(
                "a date-time needs a time after '\(Unicode.Scalar(separator))', like 1979-05-27T07:32:00Z")
        }
        let time = try self.time()
        guard let z = self.current else {
            return .localDateTime(TOMLDateTime(date: date, time: time, offsetMinutes: nil))
        }
        var offset = 0
        if z == UInt8(ascii: "Z") || z == UInt8(ascii: "z") {
            self.k += 1
        } else if z == plus || z == minus {
            self.k += 1
            let hourAt = self.k
            let hours = try self.fixedDigits(2, "an offset's hour")
            try self.expect(colon, "':' in the offset (+HH:MM)")
            let minuteAt = self.k
            let minutes = try self.fixedDigits(2, "an offset's minute")
            guard hours <= 23 else { throw self.error("offset hour \(hours) is out of range (0 to 23)", at: hourAt) }
            guard minutes <= 59 else { throw self.error("offset minute \(minutes) is out of range (0 to 59)", at: minuteAt) }
            offset = (hours * 60 + minutes) * (z == minus ? -1 : 1)
        } else {
            throw self.error("unexpected \(self.shownCurrent) after the time; an offset is Z, +HH:MM or -HH:MM")
        }
        guard self.current == nil else {
            throw self.error("unexpected \(self.shownCurrent) after the date-time")
        }
        return .offsetDateTime(TOMLDateTime(date: date, time: time, offsetMinutes: offset))
    }

    /// `HH:MM:SS` with optional fractional seconds, from `k`.
    mutating func time() throws(TOMLError) -> TOMLTime {
        let hourAt = self.k
        let hour = try self.fixedDigits(2, "an hour")
        try self.expect(colon, "':' after the hour (times are HH:MM:SS)")
        let minuteAt = self.k
        let minute = try self.fixedDigits(2, "a minute")
        guard self.current == colon else {
            throw self.error("expected ':' and seconds after the minutes (TOML 1.0 times are HH:MM:SS), saw \(self.shownCurrent)")
        }
        self.k += 1
        let secondAt = self.k
        let second = try self.fixedDigits(2, "a second")
        guard hour <= 23 else { throw self.error("hour \(hour) is out of range (0 to 23)", at: hourAt) }
        guard minute <= 59 else { throw self.error("minute \(minute) is out of range (0 to 59)", at: minuteAt) }
        guard second <= 60 else { throw self.error("second \(second) is out of range (0 to 60)", at: secondAt) }
        var fraction: [UInt8] = []
        if self.current == dot {
            self.k += 1
            while let b = self.current, isDigit(b) {
                fraction.append(b)
                self.k += 1
            }
            if fraction.isEmpty { throw self.error("expected digits after the decimal point of the seconds, saw \(self.shownCurrent)") }
        }
        return TOMLTime(hour: hour, minute: minute, second: second, fraction: String(decoding: fraction, as: UTF8.self))
    }
}
