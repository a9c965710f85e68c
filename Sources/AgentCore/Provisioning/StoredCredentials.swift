import TBChecksum
import TBJSON

/// The credentials a board keeps on flash, with what they belong to: the server, the device name, when issued.
///
/// On disk this is a JSON document a person can read (`credentials.json` in `[device] state_dir`):
/// ```json
/// {
///   "format": 1,
///   "payload": {
///     "server": { "host": "tb.example.com", "port": 1883 },
///     "deviceName": "rpi-00000000abcdef01",
///     "credentialsType": "ACCESS_TOKEN",
///     "credentials": { "token": "…" },
///     "issuedAt": "2026-07-05T12:34:56Z"
///   },
///   "sha256": "<hex SHA-256 of the payload written compactly>"
/// }
/// ```
/// The token is in the clear, protected by the file's mode (0600): a board without a secure element has nowhere
/// safer to keep it. The checksum detects a torn or hand-edited payload.
public struct StoredCredentials: Sendable, Equatable, CustomStringConvertible {
    public static let formatVersion: Int64 = 1

    public var server: ServerEndpoint
    public var deviceName: String
    public var credentials: DeviceCredentials
    public var issuedAt: UTCTimestamp

    public init(server: ServerEndpoint, deviceName: String, credentials: DeviceCredentials, issuedAt: UTCTimestamp) {
        self.server = server
        self.deviceName = deviceName
        self.credentials = credentials
        self.issuedAt = issuedAt
    }

    /// Masked summary: `device NAME (ACCESS_TOKEN, issued …) for host:port`.
    public var description: String {
        "\(self.deviceName) (\(self.credentials.type.rawValue), issued \(self.issuedAt)) for \(self.server)"
    }

    // MARK: - The document

    /// The payload object; its compact form is what the checksum covers.
    public var payload: JSONValue {
        let credentials: JSONValue
        switch self.credentials {
        case .accessToken(let token):
            credentials = ["token": .string(token.revealed)]
        case .mqttBasic(let clientId, let username, let password):
            var members: [(String, JSONValue)] = []
            if let clientId { members.append(("clientId", .string(clientId))) }
            if let username { members.append(("username", .string(username))) }
            if let password { members.append(("password", .string(password.revealed))) }
            credentials = .object(members)
        case .x509Certificate(let certificate, let certificateFile, let keyFile):
            var members: [(String, JSONValue)] = [("certificate", .string(certificate))]
            if let certificateFile { members.append(("certificateFile", .string(certificateFile))) }
            if let keyFile { members.append(("keyFile", .string(keyFile))) }
            credentials = .object(members)
        }
        return [
            "server": ["host": .string(self.server.host), "port": .integer(Int64(self.server.port))],
            "deviceName": .string(self.deviceName),
            "credentialsType": .string(self.credentials.type.rawValue),
            "credentials": credentials,
            "issuedAt": .string(self.issuedAt.iso8601),
        ]
    }

    /// The whole document, indented for people, ending with a newline.
    public var document: [UInt8] {
        let payload = self.payload
        let document: JSONValue = [
            "format": .integer(Self.formatVersion),
            "payload": payload,
            "sha256": .string(SHA256.hex(payload.serializedBytes)),
        ]
        var out = ""
        PrettyJSON.write(document, indent: 0, to: &out)
        out += "\n"
        return Array(out.utf8)
    }

    /// Reads a document written by `document`.
    ///
    /// - Throws: `CredentialDocumentError` saying what is wrong (not JSON, checksum mismatch, missing field…).
    public init(document bytes: [UInt8]) throws(CredentialDocumentError) {
        guard !bytes.isEmpty else { throw CredentialDocumentError("the file is empty") }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw CredentialDocumentError("not JSON (\(error.description)); the file is probably torn")
        }
        guard let format = value["format"]?.int64Value else { throw CredentialDocumentError("no \"format\"") }
        // A later format is not damage: a newer tb-agent wrote it (before a downgrade). It must be neither used
        // nor replaced by a fallback; the caller says so. (The checksum covers the payload, not "format": a flipped
        // bit there cannot be told from a newer agent's file, and is refused the same way, which is safe.)
        if format > Self.formatVersion { throw CredentialDocumentError(newerFormat: format) }
        guard format == Self.formatVersion else {
            throw CredentialDocumentError("format \(format) is not known to this version of tb-agent (expected \(Self.formatVersion))")
        }
        guard let payload = value["payload"], case .object = payload else { throw CredentialDocumentError("no \"payload\" object") }
        guard let checksum = value["sha256"]?.stringValue else { throw CredentialDocumentError("no \"sha256\" checksum") }
        guard SHA256.hex(payload.serializedBytes) == checksum.lowercased() else {
            throw CredentialDocumentError("the checksum does not match the payload: the file was torn or edited")
        }
        guard let host = payload["server"]?["host"]?.stringValue, !host.isEmpty,
            let port = payload["server"]?["port"]?.int64Value, (1...65535).contains(port)
        else { throw CredentialDocumentError("no valid \"server\" host and port") }
        guard let deviceName = payload["deviceName"]?.stringValue else { throw CredentialDocumentError("no \"deviceName\"") }
        guard let issuedText = payload["issuedAt"]?.stringValue, let issuedAt = UTCTimestamp(iso8601: issuedText) else {
            throw CredentialDocumentError("no valid \"issuedAt\" (ISO 8601 UTC)")
        }
        guard let typeText = payload["credentialsType"]?.stringValue, let type = CredentialsType(rawValue: typeText) else {
            throw CredentialDocumentError("no known \"credentialsType\"")
        }
        guard let fields = payload["credentials"], case .object = fields else {
            throw CredentialDocumentError("no \"credentials\" object")
        }
        let credentials: DeviceCredentials
        switch type {
        case .accessToken:
            guard let token = fields["token"]?.stringValue, !token.isEmpty else {
                throw CredentialDocumentError("ACCESS_TOKEN credentials without a token")
            }
            credentials = .accessToken(Secret(token))
        case .mqttBasic:
            let clientId = fields["clientId"]?.stringValue
            let username = fields["username"]?.stringValue
            guard clientId != nil || username != nil else {
                throw CredentialDocumentError("MQTT_BASIC credentials without clientId and username")
            }
            credentials = .mqttBasic(
                clientId: clientId, username: username, password: fields["password"]?.stringValue.map(Secret.init))
        case .x509Certificate:
            guard let certificate = fields["certificate"]?.stringValue else {
                throw CredentialDocumentError("X509_CERTIFICATE credentials without a certificate")
            }
            credentials = .x509Certificate(
                certificate: certificate, certificateFile: fields["certificateFile"]?.stringValue,
                keyFile: fields["keyFile"]?.stringValue)
        }
        // Credentials MQTT cannot carry (stored by an older agent that did not check) are as good as none.
        if let problem = credentials.problem {
            throw CredentialDocumentError("the stored credentials cannot be used: \(problem)")
        }
        self.init(
            server: ServerEndpoint(host: host, port: Int(port)), deviceName: deviceName, credentials: credentials,
            issuedAt: issuedAt)
    }
}

/// Why a credentials document cannot be used.
public struct CredentialDocumentError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    /// Set when the document is not damaged but written by a newer tb-agent in this format.
    public let newerFormat: Int64?

    public init(_ reason: String) {
        self.reason = reason
        self.newerFormat = nil
    }

    public init(newerFormat format: Int64) {
        self.reason =
            "written by a newer tb-agent (format \(format); this one reads format \(StoredCredentials.formatVersion))"
        self.newerFormat = format
    }

    public var description: String { self.reason }
}

/// Indented JSON for files people read; the order of members is kept.
enum PrettyJSON {
    static func write(_ value: JSONValue, indent: Int, to out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closing = String(repeating: "  ", count: indent)
        switch value {
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            for (i, (key, member)) in members.enumerated() {
                out += pad + JSONValue.string(key).serialized + ": "
                Self.write(member, indent: indent + 1, to: &out)
                out += i + 1 < members.count ? ",\n" : "\n"
            }
            out += closing + "}"
        case .array(let elements) where !elements.isEmpty:
            out += "[\n"
            for (i, element) in elements.enumerated() {
                out += pad
                Self.write(element, indent: indent + 1, to: &out)
                out += i + 1 < elements.count ? ",\n" : "\n"
            }
            out += closing + "]"
        default:
            out += value.serialized
        }
    }
}
