@testable import AgentCore
import TBJSON

/// The stored-credentials document (`credentials.json`): `StoredCredentials(document:)`.
///
/// Two halves per input:
/// - the input as a document: no crash; what loads writes back to a document that loads as the same value;
/// - a real document, made with a token taken from the input, then torn or damaged as the input says (cut at an
///   offset, a range deleted, a byte replaced): it loads as exactly the original or fails, and the error never
///   contains the token.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCredentials(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let loaded = try? StoredCredentials(document: bytes) {
        let again = try? StoredCredentials(document: loaded.document)
        require(again == loaded, "a loaded document does not survive being written again: \(loaded)")
    }
    CredentialsFuzz.damaged(bytes)
    return 0
}

enum CredentialsFuzz {
    static func damaged(_ bytes: [UInt8]) {
        guard bytes.count >= 4 else { return }
        // 16 hex digits from the input: a token that no other part of the document or of an error contains.
        var hasher = FNV()
        for b in bytes { hasher.add(b) }
        let token = "tok" + String(hasher.value, radix: 16)
        let credentials: DeviceCredentials =
            switch bytes[0] % 3 {
            case 0: .accessToken(Secret(token))
            case 1: .mqttBasic(clientId: "cid", username: "user", password: Secret(token))
            default: .x509Certificate(certificate: "PEM", certificateFile: "/c.pem", keyFile: "/k.pem")
            }
        let original = StoredCredentials(
            server: ServerEndpoint(host: "tb.example.com", port: 1883), deviceName: "rpi-0001",
            credentials: credentials, issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))
        var document = original.document
        let offset = (Int(bytes[1]) << 8 | Int(bytes[2])) % document.count
        switch bytes[3] % 4 {
        case 0: document.removeSubrange(offset...)  // torn write
        case 1: document.removeSubrange(offset..<min(document.count, offset + Int(bytes[0] % 64) + 1))
        case 2: document[offset] = bytes.count > 4 ? bytes[4] : 0
        default: document.insert(contentsOf: bytes.dropFirst(4).prefix(16), at: offset)
        }
        do {
            let loaded = try StoredCredentials(document: document)
            require(loaded == original, "a damaged document loaded as something else: \(loaded)")
        } catch {
            require(!error.description.contains(token), "the error shows the secret: \(error.description)")
        }
    }

    /// FNV-1a, 64 bits.
    struct FNV {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func add(_ byte: UInt8) { self.value = (self.value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    }
}
