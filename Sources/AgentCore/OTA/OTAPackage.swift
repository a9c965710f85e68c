import TBChecksum
import TBJSON

/// `[ota]`: firmware updates through ThingsBoard's OTA packages (issue 13): the agent downloads, resumes and
/// verifies a package, checks that it is a tb-agent for this board, and hands it to the root step
/// (`tb-agent apply-update`), which installs it, keeps the previous version and rolls back when the new one does not
/// stay online.
public struct OTASettings: Sendable, Equatable {
    /// `enabled` (default true): false leaves the `fw_*` attributes alone (no subscription, no report).
    public var enabled: Bool
    /// `title` (default "tb-agent"): the package title this agent runs (`current_fw_title`); a package with another
    /// title is for other firmware and is refused with FAILED.
    public var title: String
    /// `chunk_size` (bytes, default 16 KiB, 1 KiB to 60 KiB): the size of each chunk requested. Below ThingsBoard's
    /// 64 KiB payload limit (a larger request closes the session) and the agent's own limit for incoming messages.
    public var chunkSize: Int
    /// `confirm_after` (default 60 s): how long a new version must stay online before it confirms the update.
    public var confirmAfter: Duration
    /// `window` (default 5 min): how long the root step waits for that confirmation before it rolls back.
    public var window: Duration
    /// `restart_command` (default `["systemctl", "restart", "tb-agent.service"]`): what the root step runs to start
    /// the installed version (and the previous one after a rollback).
    public var restartCommand: [String]
    /// `backup_directory` (default /var/backups/tb-agent): where the root step keeps the previous version until the
    /// update is final; root's, outside the state directory that the agent's user may write.
    public var backupDirectory: String
    /// `[ota.software] command`: what installs a software package (`sw_*`), the package's path appended as its
    /// last argument; exit status 0 is UPDATED, anything else FAILED. Nil: software packages are refused (FAILED,
    /// saying so).
    public var softwareCommand: [String]?
    /// `[ota.software] timeout` (default 10 min): the command is killed after it, and the update FAILED.
    public var softwareTimeout: Duration = .seconds(600)

    public static let defaultChunkSize = 16 << 10
    public static let chunkSizeRange = (1 << 10)...(60 << 10)
    public static let defaultRestartCommand = ["systemctl", "restart", "tb-agent.service"]

    public init(
        enabled: Bool = true, title: String = "tb-agent", chunkSize: Int = OTASettings.defaultChunkSize,
        confirmAfter: Duration = .seconds(60), window: Duration = .seconds(300),
        restartCommand: [String] = OTASettings.defaultRestartCommand, backupDirectory: String = "/var/backups/tb-agent"
    ) {
        self.enabled = enabled
        self.title = title
        self.chunkSize = chunkSize
        self.confirmAfter = confirmAfter
        self.window = window
        self.restartCommand = restartCommand
        self.backupDirectory = backupDirectory
    }
}

/// A firmware package as the server announces it in the shared attributes `fw_title`, `fw_version`, `fw_size`,
/// `fw_checksum_algorithm`, `fw_checksum`. Two announcements are the same package when all five agree: that is
/// what a partial download is resumed for.
public struct OTAPackage: Sendable, Equatable, CustomStringConvertible {
    public var title: String
    public var version: String
    public var size: Int
    public var algorithm: ChecksumAlgorithm
    /// Lower-case hex, as ThingsBoard writes it.
    public var checksum: String

    public init(title: String, version: String, size: Int, algorithm: ChecksumAlgorithm, checksum: String) {
        self.title = title
        self.version = version
        self.size = size
        self.algorithm = algorithm
        self.checksum = OTAPackage.lowercased(checksum)
    }

    public var description: String { "\(self.title) \(self.version) (\(self.size) bytes, \(self.algorithm.rawValue))" }

    /// The metadata kept beside the partial file (`state_dir/ota/package.json`).
    public func json(durableBytes: Int, verified: Bool) -> JSONValue {
        .object([
            ("title", .string(self.title)), ("version", .string(self.version)), ("size", .integer(Int64(self.size))),
            ("checksumAlgorithm", .string(self.algorithm.rawValue)), ("checksum", .string(self.checksum)),
            ("durableBytes", .integer(Int64(durableBytes))), ("verified", .bool(verified)),
        ])
    }

    /// Reads `json(durableBytes:verified:)` back; nil when it is not that.
    public static func parse(_ json: JSONValue) -> (package: OTAPackage, durableBytes: Int, verified: Bool)? {
        guard let title = json["title"]?.stringValue, let version = json["version"]?.stringValue,
            let size = json["size"]?.int64Value, size > 0, size <= Int64(OTADownload.maximumPackageSize),
            let algorithm = json["checksumAlgorithm"]?.stringValue.flatMap(ChecksumAlgorithm.init(name:)),
            let checksum = json["checksum"]?.stringValue,
            let durable = json["durableBytes"]?.int64Value, durable >= 0, durable <= size
        else { return nil }
        let package = OTAPackage(title: title, version: version, size: Int(size), algorithm: algorithm, checksum: checksum)
        return (package, Int(durable), json["verified"]?.boolValue ?? false)
    }

    static func lowercased(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            out.unicodeScalars.append((0x41...0x5A).contains(scalar.value) ? Unicode.Scalar(UInt8(scalar.value + 0x20)) : scalar)
        }
        return out
    }
}

/// Which of ThingsBoard's two OTA package types: firmware (`fw_*` keys, `v2/fw/...`) or software (`sw_*`,
/// `v2/sw/...`), which work alike (thingsboard-ota-limits-claiming.md §1).
public enum OTAKind: String, Sendable, Hashable, CaseIterable {
    case firmware = "fw"
    case software = "sw"

    /// `fw_state`, `sw_title`, …
    public func key(_ name: String) -> String { self.rawValue + "_" + name }
    public var topics: OTATopics { OTATopics(kind: self) }
}

/// ThingsBoard's OTA topics (thingsboard-ota-limits-claiming.md §1), for one kind of package.
public struct OTATopics: Sendable {
    public let kind: OTAKind
    public var responseFilter: String { "v2/\(self.kind.rawValue)/response/+/chunk/+" }
    public var responsePrefix: String { "v2/\(self.kind.rawValue)/response/" }
    /// Errors of both kinds come on the firmware topic (`sendOtaPackageError`).
    public static let errorTopic = "v2/fw/error"
    /// The shared keys requested on connect.
    public var sharedKeys: [String] { ["title", "version", "size", "checksum", "checksum_algorithm", "url"].map(self.kind.key) }

    public func request(requestID: Int, index: Int) -> String { "v2/\(self.kind.rawValue)/request/\(requestID)/chunk/\(index)" }

    /// The request id and chunk index of `v2/fw/response/{id}/chunk/{n}` (`sw` for software); nil for any other topic.
    public func parseResponse(_ topic: String) -> (requestID: Int, index: Int)? {
        guard topic.hasPrefix(self.responsePrefix) else { return nil }
        let parts = topic.utf8.dropFirst(self.responsePrefix.utf8.count).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 3, String(decoding: parts[1], as: UTF8.self) == "chunk",
            let id = Self.decimal(parts[0]), let index = Self.decimal(parts[2])
        else { return nil }
        return (id, index)
    }

    static func decimal(_ bytes: Substring.UTF8View.SubSequence) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 9 else { return nil }
        var value = 0
        for byte in bytes {
            guard (0x30...0x39).contains(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }
}
