import TextSearch

/// A path to a value in a TOML document: `sensors[2].debounce`.
struct KeyPath: Hashable, Sendable, CustomStringConvertible {
    enum Segment: Hashable, Sendable {
        case key(String)
        case index(Int)
    }

    var segments: [Segment]

    init(_ segments: [Segment] = []) { self.segments = segments }

    init(keys: String...) { self.segments = keys.map { .key($0) } }

    func appending(_ key: String) -> KeyPath { KeyPath(self.segments + [.key(key)]) }
    func appending(index: Int) -> KeyPath { KeyPath(self.segments + [.index(index)]) }
    var parent: KeyPath? { self.segments.isEmpty ? nil : KeyPath(Array(self.segments.dropLast())) }
    var isEmpty: Bool { self.segments.isEmpty }

    /// Bare keys as they are, other keys quoted, indices in brackets: `server.tls.ca_file`, `sensors[0].name`.
    var description: String {
        var out = ""
        for segment in self.segments {
            switch segment {
            case .key(let key):
                if !out.isEmpty { out += "." }
                out += Self.render(key)
            case .index(let index):
                out += "[\(index)]"
            }
        }
        return out
    }

    static func isBare(_ key: String) -> Bool {
        !key.isEmpty && key.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0)
            || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    static func render(_ key: String) -> String {
        if self.isBare(key) { return key }
        var escaped = "\""
        for ch in key.unicodeScalars {
            switch ch {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            default: escaped.unicodeScalars.append(ch)
            }
        }
        return escaped + "\""
    }
}

/// Edit distance, for "did you mean" suggestions.
enum Suggestion {
    /// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
    static func closest(to word: String, in candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)? = nil
        for candidate in candidates {
            let distance = editDistance(lower.unicodeScalars, candidate.lowercased().unicodeScalars)
            if let (_, bestDistance) = best, bestDistance <= distance { continue }
            best = (candidate, distance)
        }
        guard let (candidate, distance) = best else { return nil }
        let allowed = max(2, min(lower.count, candidate.count) / 3)
        if distance <= allowed { return candidate }
        // `secret` for `device_secret`: a typed word that is a whole part of a key.
        if lower.count >= 3, let contained = candidates.first(where: { $0.lowercased().includes(lower) }) {
            return contained
        }
        return nil
    }

    /// `; did you mean "host"?` (to end a message) or an empty string.
    static func didYouMean(_ word: String, _ candidates: [String], quote: Bool = true) -> String {
        guard let match = self.closest(to: word, in: candidates) else { return "" }
        return quote ? "; did you mean \"\(match)\"?" : "; did you mean \(match)?"
    }
}
