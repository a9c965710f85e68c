import TBJSON

/// TBJSON's parser, strict and lenient.
///
/// Properties: no crash; whatever parses, serialized, parses back to the same value (in the same mode, and the
/// compact form of a strictly parsed value is strict JSON); serializing is idempotent; the byte writer (telemetry's)
/// writes the same text; every error's offset lies within the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    for lenient in [false, true] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, lenient: lenient)
        } catch {
            require(error.offset >= 0 && error.offset <= bytes.count, "error offset \(error.offset) outside 0...\(bytes.count)")
            continue
        }
        let text = value.serialized
        require(value.serializedBytes == Array(text.utf8), "the byte writer differs from the string writer: \(text)")
        let again: JSONValue
        do {
            again = try JSONValue.parse(text, lenient: lenient)
        } catch {
            require(false, "serialized \(text) does not parse back (lenient: \(lenient)): \(error)")
            continue
        }
        require(again == value, "round trip changed the value (lenient: \(lenient)): \(text) -> \(again.serialized)")
        require(again.serialized == text, "serializing is not idempotent: \(text) -> \(again.serialized)")
        if !lenient {
            require((try? JSONValue.parse(text, lenient: true)) == value, "lenient parse of strict output differs: \(text)")
        }
    }
    return 0
}
