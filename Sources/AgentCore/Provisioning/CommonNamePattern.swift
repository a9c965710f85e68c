/// The part of Java's regular expressions that ThingsBoard's X.509 chain profiles use to take the device name out of
/// a certificate's common name (`certificateRegExPattern`): the device name is group 1 of the first match
/// (`Matcher.find()`, then `group(1)`).
///
/// The agent may not link Swift's Regex (see Package.swift), so this is a small backtracking matcher for a subset
/// that covers the patterns in ThingsBoard's documentation and tests (`(.*)`, `(.*)\.company\.com`,
/// `(.*)@company.com`, `^device-([0-9a-f]+)$`…):
/// - literal characters, and `\` before any punctuation for the character itself;
/// - `.` (any character), `\d`, `\w`, `\s`, and classes `[a-z0-9_-]`, `[^.]` (ranges, negation, the escapes above);
/// - the greedy quantifiers `*`, `+`, `?` after a single character, class or `.`;
/// - `^` at the start and `$` at the end;
/// - exactly one group `( … )`, not nested, with no quantifier after it: group 1.
///
/// Anything else (`|`, `{n,m}`, lazy or possessive quantifiers, `(?…)`, a second group, back references) is refused
/// with a message naming it, rather than matched differently from ThingsBoard.
public struct CommonNamePattern: Sendable, Equatable {
    public let source: String
    let atoms: [Atom]
    let anchoredStart: Bool
    let anchoredEnd: Bool

    struct CharacterClass: Sendable, Equatable {
        var negated = false
        var ranges: [ClosedRange<UInt32>] = []

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            self.ranges.contains { $0.contains(scalar.value) } != self.negated
        }

        static let digit = CharacterClass(ranges: [0x30...0x39])
        static let word = CharacterClass(ranges: [0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F...0x5F])
        static let space = CharacterClass(ranges: [0x20...0x20, 0x09...0x0D])
    }

    enum Atom: Sendable, Equatable {
        case character(Unicode.Scalar, min: Int, max: Int)
        case any(min: Int, max: Int)
        case set(CharacterClass, min: Int, max: Int)
        case groupOpen
        case groupClose
    }

    /// - Throws: ``CommonNamePatternError`` naming the construct the agent does not support, or the syntax problem.
    public init(parsing source: String) throws(CommonNamePatternError) {
        self.source = source
        var scalars = Array(source.unicodeScalars)
        var anchoredStart = false
        var anchoredEnd = false
        if scalars.first == "^" {
            anchoredStart = true
            scalars.removeFirst()
        }
        if scalars.last == "$" && !(scalars.count >= 2 && scalars[scalars.count - 2] == "\\") {
            anchoredEnd = true
            scalars.removeLast()
        }
        var atoms: [Atom] = []
        var groups = 0
        var inGroup = false
        var index = 0
        func fail(_ message: String) -> CommonNamePatternError { CommonNamePatternError(pattern: source, message: message) }
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            var atom: Atom
            switch scalar {
            case "(":
                if index < scalars.count && scalars[index] == "?" { throw fail("(?…) groups are not supported") }
                if inGroup { throw fail("nested groups are not supported") }
                if groups == 1 { throw fail("only one group is supported: the device name is group 1") }
                inGroup = true
                groups += 1
                atoms.append(.groupOpen)
                continue
            case ")":
                guard inGroup else { throw fail("\")\" without \"(\"") }
                inGroup = false
                atoms.append(.groupClose)
                if index < scalars.count, "*+?{".unicodeScalars.contains(scalars[index]) {
                    throw fail("a quantifier after the group is not supported; put it inside: (.*)")
                }
                continue
            case "|": throw fail("alternatives (|) are not supported")
            case "{", "}": throw fail("counted repetition ({n,m}) is not supported")
            case "^", "$": throw fail("\"\(scalar)\" is supported only at the very start (^) or end ($)")
            case "*", "+", "?": throw fail("\"\(scalar)\" must follow a character, \".\" or a [class]")
            case ".": atom = .any(min: 1, max: 1)
            case "[":
                var set = CharacterClass()
                if index < scalars.count && scalars[index] == "^" {
                    set.negated = true
                    index += 1
                }
                var first = true
                while true {
                    guard index < scalars.count else { throw fail("\"[\" without \"]\"") }
                    var low = scalars[index]
                    index += 1
                    if low == "]" && !first { break }
                    first = false
                    if low == "[" { throw fail("nested classes are not supported") }
                    if low == "\\" {
                        guard index < scalars.count else { throw fail("the pattern ends with \"\\\"") }
                        let escaped = scalars[index]
                        index += 1
                        if let named = Self.namedClass(escaped) {
                            if named.negated { throw fail("\\\(escaped) inside a class is not supported") }
                            set.ranges += named.ranges
                            continue
                        }
                        guard !Self.isLetterOrDigit(escaped) else { throw fail("the escape \\\(escaped) is not supported") }
                        low = escaped
                    }
                    if index + 1 < scalars.count && scalars[index] == "-" && scalars[index + 1] != "]" {
                        let high = scalars[index + 1]
                        if high == "\\" || high == "[" { throw fail("a range must end with a plain character") }
                        guard low.value <= high.value else { throw fail("the range \(low)-\(high) is backwards") }
                        set.ranges.append(low.value...high.value)
                        index += 2
                    } else {
                        set.ranges.append(low.value...low.value)
                    }
                }
                atom = .set(set, min: 1, max: 1)
            case "\\":
                guard index < scalars.count else { throw fail("the pattern ends with \"\\\"") }
                let escaped = scalars[index]
                index += 1
                if let named = Self.namedClass(escaped) {
                    atom = .set(named, min: 1, max: 1)
                } else if Self.isLetterOrDigit(escaped) {
                    throw fail("the escape \\\(escaped) is not supported")
                } else {
                    atom = .character(escaped, min: 1, max: 1)
                }
            default:
                atom = .character(scalar, min: 1, max: 1)
            }
            if index < scalars.count, let bounds = Self.quantifier(scalars[index]) {
                index += 1
                if index < scalars.count, "?+".unicodeScalars.contains(scalars[index]) {
                    throw fail("lazy and possessive quantifiers are not supported")
                }
                switch atom {
                case .character(let c, _, _): atom = .character(c, min: bounds.min, max: bounds.max)
                case .any: atom = .any(min: bounds.min, max: bounds.max)
                case .set(let s, _, _): atom = .set(s, min: bounds.min, max: bounds.max)
                default: break
                }
            }
            atoms.append(atom)
        }
        if inGroup { throw fail("\"(\" without \")\"") }
        if groups == 0 { throw fail("it has no group; the device name is group 1, for example \"(.*)\" or \"(.*)\\.example\\.com\"") }
        self.atoms = atoms
        self.anchoredStart = anchoredStart
        self.anchoredEnd = anchoredEnd
    }

    static func quantifier(_ scalar: Unicode.Scalar) -> (min: Int, max: Int)? {
        switch scalar {
        case "*": return (0, Int.max)
        case "+": return (1, Int.max)
        case "?": return (0, 1)
        default: return nil
        }
    }

    static func namedClass(_ scalar: Unicode.Scalar) -> CharacterClass? {
        switch scalar {
        case "d": return .digit
        case "w": return .word
        case "s": return .space
        case "D": return CharacterClass(negated: true, ranges: CharacterClass.digit.ranges)
        case "W": return CharacterClass(negated: true, ranges: CharacterClass.word.ranges)
        case "S": return CharacterClass(negated: true, ranges: CharacterClass.space.ranges)
        default: return nil
        }
    }

    static func isLetterOrDigit(_ scalar: Unicode.Scalar) -> Bool {
        (0x30...0x39).contains(scalar.value) || (0x41...0x5A).contains(scalar.value) || (0x61...0x7A).contains(scalar.value)
    }

    /// Group 1 of the first match in `commonName` (leftmost, greedy, as Java's `find()`), nil when nothing matches.
    public func deviceName(in commonName: String) -> String? {
        let text = Array(commonName.unicodeScalars)
        let starts = self.anchoredStart ? 0...0 : 0...text.count
        for start in starts {
            var group: (Int, Int)? = nil
            var open = 0
            if self.match(atom: 0, at: start, text, &open, &group), let (from, to) = group {
                var out = String.UnicodeScalarView()
                out.append(contentsOf: text[from..<to])
                return String(out)
            }
        }
        return nil
    }

    private func match(atom index: Int, at position: Int, _ text: [Unicode.Scalar], _ open: inout Int,
                       _ group: inout (Int, Int)?) -> Bool {
        guard index < self.atoms.count else { return !self.anchoredEnd || position == text.count }
        let test: (Unicode.Scalar) -> Bool
        let bounds: (min: Int, max: Int)
        switch self.atoms[index] {
        case .groupOpen:
            let saved = open
            open = position
            if self.match(atom: index + 1, at: position, text, &open, &group) { return true }
            open = saved
            return false
        case .groupClose:
            let saved = group
            group = (open, position)
            if self.match(atom: index + 1, at: position, text, &open, &group) { return true }
            group = saved
            return false
        case .character(let c, let min, let max):
            test = { $0 == c }
            bounds = (min, max)
        case .any(let min, let max):
            test = { _ in true }
            bounds = (min, max)
        case .set(let set, let min, let max):
            test = { set.contains($0) }
            bounds = (min, max)
        }
        var count = 0
        while count < bounds.max && position + count < text.count && test(text[position + count]) { count += 1 }
        while count >= bounds.min {
            if self.match(atom: index + 1, at: position + count, text, &open, &group) { return true }
            count -= 1
        }
        return false
    }
}

/// A `cn_regex` the agent cannot use, with the reason.
public struct CommonNamePatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    public let message: String

    public var description: String {
        "\"\(self.pattern)\": \(self.message) (the agent supports literals, \\-escapes, ., \\d, \\w, \\s, [classes], *, +, ?, ^, $ and one group)"
    }
}
