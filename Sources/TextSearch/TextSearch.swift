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
