// Shared by every fuzz target (compiled into each by scripts/fuzz.sh; not a SwiftPM target).

/// Stops the run when a property does not hold: libFuzzer saves the input that broke it as a crash.
///
/// Fuzz harnesses may trap on purpose: that is how a property violation is reported.
func require(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError("fuzz property violated: \(message())", file: file, line: line) }
}

/// The input as an array.
func fuzzInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Splits `bytes` at the first `separator`: (before, after), or (nil, bytes) when there is none.
func splitOnce(_ bytes: [UInt8], at separator: UInt8) -> ([UInt8]?, [UInt8]) {
    guard let i = bytes.firstIndex(of: separator) else { return (nil, bytes) }
    return (Array(bytes[..<i]), Array(bytes[(i + 1)...]))
}

/// A stand-in of the same length (in characters and in UTF-8 bytes) with different content, so that a text
/// computed with it can be compared with the text computed with the original: masking must not tell them apart.
/// Nil when `text` is not ASCII (where "same length" has several meanings). Control characters (below U+0020, and
/// DEL) are kept as they are: whether a secret has one decides whether it can be used at all (issue 10, finding 4),
/// which the agent must say; the rest of the secret must not show.
func sameLengthStandIn(_ text: String) -> String? {
    guard text.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
    // "\r\n" is one Character but two bytes: line ends are kept as they are with the other controls.
    return String(String.UnicodeScalarView(text.unicodeScalars.map { s -> Unicode.Scalar in
        if s.value < 0x20 || s.value == 0x7F { return s }
        return s == "Q" ? "Z" : "Q"
    }))
}
