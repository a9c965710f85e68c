@testable import AgentCore
import TBJSON

/// `/provision/response` payloads: `ProvisionResponse.decode` and `.credentials(from:…)`.
///
/// Properties: no crash; the two entry points agree; success carries non-empty credentials of a known type; and the
/// text a person sees (an error's description, the credentials' description) does not depend on the secret: the
/// same reply with the token or password replaced by a same-length stand-in gives the same text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProvision(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let seen = ProvisionFuzz.outcome(bytes)
    if let value = try? JSONValue.parse(bytes), let standIn = ProvisionFuzz.withSecretsReplaced(value), standIn != value {
        let other = ProvisionFuzz.outcome(standIn.serializedBytes)
        require(seen == other, "the secret shows: \(seen) vs \(other)")
    }
    return 0
}

enum ProvisionFuzz {
    static let server = ServerEndpoint(host: "tb.example.com", port: 1883)

    /// What a person would see: the credentials' masked summary or the error's message, from both entry points.
    static func outcome(_ bytes: [UInt8]) -> String {
        let decoded: String
        switch Result(catching: { () throws(ProvisioningError) in
            try ProvisionResponse.decode(bytes, certificateFile: "/etc/tb-agent/cert.pem", keyFile: "/etc/tb-agent/key.pem")
        }) {
        case .success(.success(let credentials)):
            switch credentials {
            case .accessToken(let token): require(!token.isEmpty, "empty token accepted")
            case .mqttBasic(let clientId, let username, _):
                require(clientId != nil || username != nil, "MQTT_BASIC without client id and user name")
            case .x509Certificate(let certificate, _, _): require(!certificate.isEmpty, "empty certificate accepted")
            }
            decoded = "success \(credentials)"
        case .success(.notFound(let message)): decoded = "notFound \(message ?? "-")"
        case .success(.failure(let message)): decoded = "failure \(message ?? "-")"
        case .failure(let error): decoded = "error \(error)"
        }
        let credentials: String
        do {
            credentials = "\(try ProvisionResponse.credentials(from: bytes, deviceName: "rpi-0001", server: self.server))"
        } catch {
            credentials = "error \(error) / \(error.agentError.description)"
        }
        return decoded + " | " + credentials
    }

    /// The reply with every secret string (an ACCESS_TOKEN, an MQTT_BASIC password) replaced; nil when there is none
    /// or when a stand-in could change the meaning (a non-ASCII secret, or MQTT_BASIC credentials sent as JSON text).
    static func withSecretsReplaced(_ value: JSONValue) -> JSONValue? {
        guard case .object(let members) = value else { return nil }
        var replaced = false
        var out: [(String, JSONValue)] = []
        for (key, member) in members {
            switch (key, member) {
            case ("credentialsValue", .string(let text)), ("accessToken", .string(let text)):
                guard (try? JSONValue.parse(text))?.objectMembers == nil, let standIn = sameLengthStandIn(text) else {
                    return nil
                }
                out.append((key, .string(standIn)))
                replaced = true
            case ("credentialsValue", .object(let fields)):
                var newFields: [(String, JSONValue)] = []
                for (name, field) in fields {
                    if name == "password", case .string(let text) = field {
                        guard let standIn = sameLengthStandIn(text) else { return nil }
                        newFields.append((name, .string(standIn)))
                        replaced = true
                    } else {
                        newFields.append((name, field))
                    }
                }
                out.append((key, .object(newFields)))
            default:
                out.append((key, member))
            }
        }
        return replaced ? .object(out) : nil
    }
}
