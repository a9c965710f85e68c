/// Substring search without `_StringProcessing`, which the agent's modules do not import (see Package.swift): the
/// standard library's `contains(_:)`, `firstRange(of:)` and `replacing(_:with:)` for strings live there, and with
/// them the regex engine, 1.25 MB of a static binary. Compares characters, as those do.
extension StringProtocol {
    /// Whether `other` occurs in this string (an empty one always does).
    public func includes(_ other: some StringProtocol) -> Bool {
        self.firstRange(ofText: other) != nil
    }

    /// The first range where `other` occurs, or nil.
    public func firstRange(ofText other: some StringProtocol) -> Range<Index>? {
        guard let first = other.first else { return self.startIndex..<self.startIndex }
        var index = self.startIndex
        while let start = self[index...].firstIndex(of: first) {
            var mine = start
            var theirs = other.startIndex
            while theirs != other.endIndex, mine != self.endIndex, self[mine] == other[theirs] {
                mine = self.index(after: mine)
                theirs = other.index(after: theirs)
            }
            if theirs == other.endIndex { return start..<mine }
            index = self.index(after: start)
        }
        return nil
    }

    /// This string with every occurrence of `target` (not empty) replaced by `replacement`, left to right.
    public func replacingText(_ target: some StringProtocol, with replacement: some StringProtocol) -> String {
        guard !target.isEmpty else { return String(self) }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(ofText: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}

/// The Levenshtein distance between two sequences (insertions, deletions and substitutions of one element each):
/// by characters, or by Unicode scalars, as the caller passes them. For "did you mean" suggestions.
public func editDistance<C: Collection>(_ a: C, _ b: C) -> Int where C.Element: Equatable {
    let a = Array(a), b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
