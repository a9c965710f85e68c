/// Why a text is not JSON, with the byte offset where the parser gave up.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "invalid JSON at byte \(self.offset): \(self.reason)" }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
}

extension JSONValue {
    /// Parses JSON text.
    ///
    /// - Parameters:
    ///   - bytes: UTF-8 text.
    ///   - lenient: accept what Gson's lenient `JsonParser.parseString` accepts too: unquoted keys and values,
    ///     single-quoted strings, `#` and `//` comments. ThingsBoard parses device payloads that way.
    ///   - maxDepth: nesting limit, so that hostile input cannot exhaust the stack.
    public static func parse(_ bytes: some Collection<UInt8>, lenient: Bool = false, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        var parser = Parser(bytes: Array(bytes), lenient: lenient, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    public static func parse(_ text: String, lenient: Bool = false, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), lenient: lenient, maxDepth: maxDepth)
    }
}

private struct Parser {
    let bytes: [UInt8]
    let lenient: Bool
    let maxDepth: Int
    var index = 0

    init(bytes: [UInt8], lenient: Bool, maxDepth: Int) {
        self.bytes = bytes
        self.lenient = lenient
        self.maxDepth = maxDepth
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: self.index, reason: reason) }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // A UTF-8 byte order mark is tolerated.
        if self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { self.index = 3 }
        try self.skipWhitespace()
        guard self.index < self.bytes.count else { throw self.fail("empty document") }
        let value = try self.parseValue(depth: 0)
        try self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.fail("unexpected text after the value") }
        return value
    }

    mutating func skipWhitespace() throws(JSONParseError) {
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 {
                self.index += 1
            } else if self.lenient && c == UInt8(ascii: "#") {
                while self.index < self.bytes.count && self.bytes[self.index] != 0x0A { self.index += 1 }
            } else if self.lenient && c == UInt8(ascii: "/") && self.index + 1 < self.bytes.count {
                let next = self.bytes[self.index + 1]
                if next == UInt8(ascii: "/") {
                    while self.index < self.bytes.count && self.bytes[self.index] != 0x0A { self.index += 1 }
                } else if next == UInt8(ascii: "*") {
                    self.index += 2
                    while self.index + 1 < self.bytes.count
                        && !(self.bytes[self.index] == UInt8(ascii: "*") && self.bytes[self.index + 1] == UInt8(ascii: "/"))
                    {
                        self.index += 1
                    }
                    guard self.index + 1 < self.bytes.count else { throw self.fail("unterminated comment") }
                    self.index += 2
                } else {
                    return
                }
            } else {
                return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < self.maxDepth else { throw self.fail("nested deeper than \(self.maxDepth) levels") }
        guard self.index < self.bytes.count else { throw self.fail("unexpected end of text") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject(depth: depth)
        case UInt8(ascii: "["): return try self.parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.parseString(quote: UInt8(ascii: "\"")))
        case UInt8(ascii: "'") where self.lenient: return .string(try self.parseString(quote: UInt8(ascii: "'")))
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try self.parseNumber()
        default:
            if self.matchLiteral("true") { return .bool(true) }
            if self.matchLiteral("false") { return .bool(false) }
            if self.matchLiteral("null") { return .null }
            if self.lenient, let word = self.parseUnquoted() { return .string(word) }
            throw self.fail("unexpected character '\(Self.printable(self.bytes[self.index]))'")
        }
    }

    static func printable(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
    }

    mutating func matchLiteral(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { return false }
        let matches = word.withUTF8Buffer { buffer in
            buffer.elementsEqual(self.bytes[self.index..<self.index + count])
        }
        guard matches else { return false }
        let end = self.index + count
        if end < self.bytes.count, Self.isUnquotedCharacter(self.bytes[end]) { return false }
        self.index = end
        return true
    }

    static func isUnquotedCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "+"), UInt8(ascii: "$"):
            return true
        default:
            return c >= 0x80
        }
    }

    mutating func parseUnquoted() -> String? {
        let start = self.index
        while self.index < self.bytes.count && Self.isUnquotedCharacter(self.bytes[self.index]) { self.index += 1 }
        guard self.index > start else { return nil }
        return String(decoding: self.bytes[start..<self.index], as: UTF8.self)
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        self.index += 1
        var members: [(String, JSONValue)] = []
        try self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            return .object(members)
        }
        while true {
            try self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.fail("unterminated object") }
            let key: String
            switch self.bytes[self.index] {
            case UInt8(ascii: "\""): key = try self.parseString(quote: UInt8(ascii: "\""))
            case UInt8(ascii: "'") where self.lenient: key = try self.parseString(quote: UInt8(ascii: "'"))
            default:
                guard self.lenient, let word = self.parseUnquoted() else { throw self.fail("expected a quoted key") }
                key = word
            }
            try self.skipWhitespace()
            guard self.index < self.bytes.count,
                self.bytes[self.index] == UInt8(ascii: ":") || (self.lenient && self.bytes[self.index] == UInt8(ascii: "="))
            // The key is not quoted back: in a torn or edited credentials file it can be a secret.
            else { throw self.fail("expected ':' after an object key") }
            self.index += 1
            try self.skipWhitespace()
            let value = try self.parseValue(depth: depth + 1)
            members.append((key, value))
            try self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.fail("unterminated object") }
            let c = self.bytes[self.index]
            self.index += 1
            if c == UInt8(ascii: "}") { return .object(members) }
            guard c == UInt8(ascii: ",") || (self.lenient && c == UInt8(ascii: ";")) else {
                self.index -= 1
                throw self.fail("expected ',' or '}' in object")
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        self.index += 1
        var elements: [JSONValue] = []
        try self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            return .array(elements)
        }
        while true {
            try self.skipWhitespace()
            elements.append(try self.parseValue(depth: depth + 1))
            try self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.fail("unterminated array") }
            let c = self.bytes[self.index]
            self.index += 1
            if c == UInt8(ascii: "]") { return .array(elements) }
            guard c == UInt8(ascii: ",") || (self.lenient && c == UInt8(ascii: ";")) else {
                self.index -= 1
                throw self.fail("expected ',' or ']' in array")
            }
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = self.index
        var isInteger = true
        if self.bytes[self.index] == UInt8(ascii: "-") { self.index += 1 }
        func digits(_ p: inout Parser) -> Int {
            let s = p.index
            while p.index < p.bytes.count && p.bytes[p.index] >= UInt8(ascii: "0") && p.bytes[p.index] <= UInt8(ascii: "9") {
                p.index += 1
            }
            return p.index - s
        }
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw self.fail("a number needs digits") }
        if !self.lenient && intDigits > 1 && self.bytes[self.index - intDigits] == UInt8(ascii: "0") {
            throw self.fail("a number may not have leading zeros")
        }
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: ".") {
            isInteger = false
            self.index += 1
            guard digits(&self) > 0 else { throw self.fail("a fraction needs digits") }
        }
        if self.index < self.bytes.count && (self.bytes[self.index] == UInt8(ascii: "e") || self.bytes[self.index] == UInt8(ascii: "E")) {
            isInteger = false
            self.index += 1
            if self.index < self.bytes.count && (self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-")) {
                self.index += 1
            }
            guard digits(&self) > 0 else { throw self.fail("an exponent needs digits") }
        }
        let text = String(decoding: self.bytes[start..<self.index], as: UTF8.self)
        if isInteger, let value = Int64(text) { return .integer(value) }
        return .number(text)
    }

    mutating func parseString(quote: UInt8) throws(JSONParseError) -> String {
        self.index += 1
        var out: [UInt8] = []
        while true {
            guard self.index < self.bytes.count else { throw self.fail("unterminated string") }
            let c = self.bytes[self.index]
            self.index += 1
            if c == quote { break }
            if c == UInt8(ascii: "\\") {
                guard self.index < self.bytes.count else { throw self.fail("unterminated escape") }
                let e = self.bytes[self.index]
                self.index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "'"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try self.parseHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        // A surrogate pair: the low half must follow.
                        guard self.index + 1 < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                            self.bytes[self.index + 1] == UInt8(ascii: "u")
                        else { throw self.fail("unpaired surrogate in \\u escape") }
                        self.index += 2
                        let low = try self.parseHex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw self.fail("invalid low surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw self.fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw self.fail("invalid escape '\\\(Self.printable(e))'")
                }
            } else {
                guard c >= 0x20 || self.lenient else { throw self.fail("control character in string") }
                out.append(c)
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw self.fail("string is not valid UTF-8") }
        return text
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.index]
            self.index += 1
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw self.fail("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
        }
        return value
    }
}
