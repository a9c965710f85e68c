import TBChecksum
import TBJSON

/// Downloads a firmware package the way ThingsBoard serves it over MQTT (thingsboard-ota-limits-claiming.md §1),
/// resumably: a pure state machine. Time is passed in; each input returns the actions the runtime carries out
/// (requests, file writes, telemetry), in order.
///
/// - On every connect: `connected(now:)` (a new request id for the session: ThingsBoard caches the request id's
///   package per session) reports `current_fw_title`, `current_fw_version` and where a download stands. Nothing is
///   requested until the `fw_*` shared attributes have been read again (`attributes(_:now:)`): the package may have
///   changed while the agent was away.
/// - A new package: `.begin` (the runtime checks the free space and starts an empty partial file, or tells
///   `storageFailed`), then one chunk request at a time (`.request`; the runtime sends it as the server's limits
///   allow and says when with `requestSent(now:)`, which starts the chunk's timeout).
/// - A chunk (`chunk(topic:payload:now:)`) of the request id, index and length expected is appended; anything else
///   is ignored (another id or index) or asked for again (a wrong length), a bounded number of times. Every
///   `Settings.syncEvery` bytes the file is made durable (`.sync`): what a restart resumes from.
/// - The whole package: DOWNLOADED, the checksum compared, VERIFIED (`.markVerified`) or FAILED (`.discard`).
/// - A verified package is checked (`.inspect`: the runtime reads its header and runs its `--version` off the loop,
///   then says `inspected(problem:)`): a tb-agent for this board of the version announced is handed to the root
///   step (`.handOver`, the `ready` ticket) and reported UPDATING; anything else is FAILED.
/// - What the root step decided (`UpdateOutcome`, at start or when it appears: `outcome(_:)`) is reported: UPDATED,
///   or FAILED with why it rolled back. A package that failed is not downloaded again while it stays assigned.
/// - The same package after a disconnect or a restart resumes at the first byte not durable: chunk
///   `bytes / chunkSize`, the bytes of it already held skipped (so a changed `chunk_size` resumes too).
public struct OTADownload: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Firmware (the agent itself) or software (files a command installs).
        public var kind: OTAKind = .firmware
        /// What runs now (`current_fw_title`/`current_sw_title`): for firmware `[ota] title`; for software the
        /// package last installed ("" when none).
        public var title: String
        /// The version this agent runs (`current_fw_version`), or the software package's last installed.
        public var version: String
        public var chunkSize: Int
        /// How long a chunk may take before it is asked for again.
        public var chunkTimeout: Duration = .seconds(30)
        /// How many times one chunk is asked for before the download is reported FAILED (it resumes on the next
        /// session).
        public var maxAttempts: Int = 5
        /// The partial file is made durable every this many bytes (and at the end): few writes to flash, and at most
        /// this much downloaded again after a power cut.
        public var syncEvery: Int = 128 << 10
        /// `fw_progress` is reported every this many percent.
        public var progressStep: Int = 10
        /// Why no package of this kind can be taken here (software without `[ota.software] command`): every package
        /// announced is FAILED with it.
        public var refusal: String? = nil

        public init(title: String, version: String, chunkSize: Int, kind: OTAKind = .firmware) {
            self.kind = kind
            self.title = title
            self.version = version
            self.chunkSize = chunkSize
        }
    }

    /// The largest package taken (`fw_size` above it is refused): 1 GiB.
    public static let maximumPackageSize = 1 << 30
    /// Space left free beyond the package when a download starts.
    public static let spaceMargin = 4 << 20

    /// What the runtime does, in order.
    public enum Action: Sendable, Equatable {
        /// Telemetry: `fw_state` and what goes with it.
        case report(JSONValue)
        /// Check that `package.size + spaceMargin` bytes are free in the state directory, then replace any partial
        /// file with an empty one for `package` (its metadata written crash-safely). On failure: `storageFailed`.
        case begin(OTAPackage)
        /// Publish a chunk request (payload: the chunk size in decimal), then `requestSent(now:)`.
        case request(topic: String, payload: [UInt8])
        /// Append to the partial file.
        case append([UInt8])
        /// Make the partial file durable (fsync), then record `durableBytes` in its metadata.
        case sync(durableBytes: Int)
        /// Record in the metadata that the package is complete and verified.
        case markVerified
        /// Remove the partial file and its metadata.
        case discard
        /// Check the verified package off the loop (`FirmwareImage`), then `inspected(problem:)`.
        case inspect(OTAPackage)
        /// Write the `ready` ticket for the root step (crash-safe). On failure: `storageFailed`.
        case handOver(UpdateTicket)
        /// The UPDATED outcome was reported: remove it.
        case forgetOutcome
        /// A software package was installed (its command succeeded): record it as what runs, remove the part.
        case installed(OTAPackage)
        case log(LogLevel, String)
    }

    public enum LogLevel: Sendable, Equatable { case info, warning }

    /// Where things stand, for `tb-agent status` and the LED.
    public enum Phase: Sendable, Equatable {
        case idle
        case downloading(OTAPackage, bytes: Int)
        case verified(OTAPackage)
        /// Handed to the root step, which installs it and restarts the agent.
        case updating(OTAPackage)
        case failed(OTAPackage?, String)

        public var isUpdating: Bool { if case .updating = self { return true } else { return false } }
    }

    /// A partial file found at start.
    public struct Restored: Sendable {
        public var package: OTAPackage
        public var durableBytes: Int
        /// The checksum of the first `durableBytes` bytes (the runtime hashes them again at start).
        public var checksum: Checksum
        public var verified: Bool

        public init(package: OTAPackage, durableBytes: Int, checksum: Checksum, verified: Bool) {
            self.package = package
            self.durableBytes = durableBytes
            self.checksum = checksum
            self.verified = verified
        }
    }

    struct Download: Sendable {
        var package: OTAPackage
        var received: Int
        var durable: Int
        var checksum: Checksum
        /// The chunk asked for, and when it is due (nil until `requestSent`).
        var awaiting: (index: Int, due: Duration?)? = nil
        var attempts = 0
        var reportedPercent = -1
    }

    enum Stage: Sendable {
        case idle
        case downloading(Download)
        case verified(OTAPackage)
        case updating(OTAPackage)
        /// `resumable`: the partial file is kept and the next session resumes it (a timeout); otherwise the same
        /// package is not tried again until the process restarts.
        case failed(OTAPackage?, String, partial: Download?)
    }

    public let settings: Settings
    var topics: OTATopics { self.settings.kind.topics }
    /// `fw_state`, `sw_state`, …
    func key(_ name: String) -> String { self.settings.kind.key(name) }
    /// What runs now: the settings' title and version, until a software package is installed.
    public private(set) var current: (title: String, version: String)
    var isFirmware: Bool { self.settings.kind == .firmware }
    var word: String { self.isFirmware ? "firmware" : "software" }
    var stage: Stage = .idle
    /// The `fw_*` shared attributes as last known (only those keys: a server cannot grow this).
    var attributes: [String: JSONValue] = [:]
    var online = false
    /// The request id of the session (and package): new on every connect and every new package.
    var requestID = 0
    /// Chunks ignored (another request id or index).
    public private(set) var ignoredChunks = 0
    /// A verified package is being checked (`.inspect` given, `inspected` not yet).
    var inspecting = false
    /// An UPDATED outcome to report on the next connect.
    var pendingUpdated: UpdateOutcome? = nil

    /// `restored`: the partial file found at start; `handedOver`: its `ready` ticket (or the root step's trial) is
    /// there; `outcome`: what the root step decided.
    public init(settings: Settings, restored: Restored? = nil, handedOver: Bool = false, outcome: UpdateOutcome? = nil) {
        self.settings = settings
        self.current = (settings.title, settings.version)
        if let outcome { self.take(outcome) }
        guard let restored else { return }
        if handedOver && restored.verified {
            self.stage = .updating(restored.package)
            return
        }
        if restored.verified && restored.durableBytes == restored.package.size {
            self.stage = .verified(restored.package)
        } else {
            // Not asked for until the attributes say the package is still the one assigned.
            let download = Download(package: restored.package, received: restored.durableBytes, durable: restored.durableBytes, checksum: restored.checksum)
            self.stage = .failed(restored.package, "", partial: download)
        }
    }

    public var phase: Phase {
        switch self.stage {
        case .idle: return .idle
        case .downloading(let d): return .downloading(d.package, bytes: d.received)
        case .verified(let p): return .verified(p)
        case .updating(let p): return .updating(p)
        case .failed(let p, let reason, let partial):
            if reason.isEmpty, let partial { return .downloading(partial.package, bytes: partial.received) }
            return .failed(p, reason)
        }
    }

    /// When `tick(now:)` is due: the chunk's timeout.
    public var deadline: Duration? {
        guard case .downloading(let d) = self.stage else { return nil }
        return d.awaiting?.due
    }

    // MARK: inputs

    public mutating func connected(now: Duration) -> [Action] {
        self.online = true
        self.requestID += 1
        var report: [(String, JSONValue)] = [
            ("current_" + self.key("title"), .string(self.current.title)), ("current_" + self.key("version"), .string(self.current.version)),
        ]
        switch self.stage {
        case .idle: break
        case .downloading(let d): report += self.downloading(d)
        case .verified: report.append((self.key("state"), .string("VERIFIED")))
        case .updating: report.append((self.key("state"), .string("UPDATING")))
        case .failed(_, let reason, _) where !reason.isEmpty:
            report += [(self.key("state"), .string("FAILED")), (self.key("error"), .string(reason))]
        case .failed: break
        }
        var actions: [Action] = []
        if self.pendingUpdated != nil {
            report += [(self.key("state"), .string("UPDATED")), (self.key("progress"), .integer(100))]
            self.pendingUpdated = nil
            actions = [.report(.object(report)), .forgetOutcome]
        } else {
            actions = [.report(.object(report))]
        }
        if case .verified(let package) = self.stage, !self.inspecting {
            // Verified before a restart, not yet handed over: check it again.
            self.inspecting = true
            actions.append(.inspect(package))
        }
        return actions
    }

    /// What the root step decided, seen while running (the new version confirmed it stayed online).
    public mutating func outcome(_ outcome: UpdateOutcome) -> [Action] {
        self.take(outcome)
        guard self.online else { return [] }
        switch outcome.state {
        case .updated:
            guard self.pendingUpdated != nil else { return [.forgetOutcome] }
            self.pendingUpdated = nil
            return [.report(.object([(self.key("state"), .string("UPDATED")), (self.key("progress"), .integer(100))])), .forgetOutcome]
        case .failed:
            return [.report(.object([(self.key("state"), .string("FAILED")), (self.key("error"), .string(outcome.error ?? "the update failed"))]))]
        }
    }

    mutating func take(_ outcome: UpdateOutcome) {
        switch outcome.state {
        case .updated:
            // Reported once, by the version it installed (an outcome left for another version is stale).
            if outcome.package.version == self.settings.version && outcome.package.title == self.settings.title {
                self.pendingUpdated = outcome
            }
            self.stage = .idle
        case .failed:
            // Kept (the file stays) so that the package is not downloaded again while it is assigned.
            self.stage = .failed(outcome.package, outcome.error ?? "the update failed", partial: nil)
        }
    }

    /// The verified package's checks are done: nil, it is handed to the root step; otherwise why not.
    public mutating func inspected(problem: String?) -> [Action] {
        self.inspecting = false
        guard case .verified(let package) = self.stage else { return [] }
        if let problem { return self.fail(package, problem, discard: true) }
        if !self.isFirmware {
            // The command installed it: what runs now.
            self.current = (package.title, package.version)
            self.stage = .idle
            return [
                .installed(package),
                .report(.object([
                    (self.key("state"), .string("UPDATED")), ("current_" + self.key("title"), .string(package.title)),
                    ("current_" + self.key("version"), .string(package.version)),
                ])),
                .log(.info, "software package \(package) installed by [ota.software] command"),
            ]
        }
        self.stage = .updating(package)
        return [
            .handOver(UpdateTicket(package: package, from: self.settings.version)),
            .report(.object([(self.key("state"), .string("UPDATING"))])),
            .log(.info, "firmware package \(package) is a tb-agent for this board: handed to the root step (tb-agent apply-update) to install; the previous version is kept until the new one has stayed online"),
        ]
    }

    public mutating func disconnected() {
        self.online = false
        if case .downloading(var d) = self.stage {
            // Resumed on the next session, once the attributes confirm the package.
            d.awaiting = nil
            d.attempts = 0
            self.stage = .failed(d.package, "", partial: d)
        }
    }

    /// A shared-attribute update (`{"k":v}`, `{"deleted":[…]}`) or an attributes response (`{"shared":{…}}`, which
    /// holds every key set).
    public mutating func attributes(_ update: JSONValue, now: Duration) -> [Action] {
        if let shared = update["shared"]?.objectMembers {
            self.attributes = [:]
            for (key, value) in shared where self.topics.sharedKeys.contains(key) { self.attributes[key] = value }
        } else {
            var touched = false
            for (key, value) in update.objectMembers ?? [] {
                if key == "deleted" {
                    for name in value.arrayValue ?? [] {
                        if let name = name.stringValue, self.topics.sharedKeys.contains(name) {
                            self.attributes[name] = nil
                            touched = true
                        }
                    }
                } else if self.topics.sharedKeys.contains(key) {
                    self.attributes[key] = value
                    touched = true
                }
            }
            guard touched else { return [] }
        }
        return self.evaluate(now: now)
    }

    /// What the attributes assign, against what runs and what is under way.
    mutating func evaluate(now: Duration) -> [Action] {
        guard let title = self.attributes[self.key("title")]?.stringValue, let version = self.attributes[self.key("version")]?.stringValue else {
            // Nothing assigned (or unassigned): a partial download of a package no longer assigned goes.
            if case .downloading = self.stage { return self.abandon("the package is no longer assigned") }
            if case .failed(_, _, let partial) = self.stage, partial != nil { return self.abandon("the package is no longer assigned") }
            return []
        }
        if title == self.current.title && version == self.current.version {
            // Already running it.
            switch self.stage {
            case .idle, .failed(_, _, partial: nil):
                self.stage = .idle
                return []
            default: return self.abandon("the assigned package \(title) \(version) is the one running")
            }
        }
        let package: OTAPackage
        switch self.announcedPackage(title: title, version: version) {
        case .waiting: return []
        case .refused(let reason): return self.fail(nil, reason, discard: true)
        case .package(let p): package = p
        }
        switch self.stage {
        case .downloading(let d) where d.package == package:
            return []  // under way
        case .verified(let p) where p == package:
            return []
        case .updating:
            return []  // the root step has it: another assignment waits for the outcome
        case .failed(let p, let reason, let partial) where p == package:
            guard let partial, self.online else { return [] }
            _ = reason
            return self.resume(partial, now: now)
        default:
            // A new package (or the first): start afresh.
            self.requestID += 1
            self.stage = .downloading(Download(package: package, received: 0, durable: 0, checksum: Checksum(package.algorithm)))
            guard case .downloading(let d) = self.stage else { return [] }
            var actions: [Action] = [
                .log(.info, "\(self.word) package \(package) assigned (running \(self.current.title.isEmpty ? "none" : "\(self.current.title) \(self.current.version)")): downloading it in chunks of \(self.settings.chunkSize) bytes"),
                .begin(package),
            ]
            actions += self.progress(d)
            if self.online { actions += self.requestNext() }
            return actions
        }
    }

    enum Announced { case waiting, refused(String), package(OTAPackage) }

    func announcedPackage(title: String, version: String) -> Announced {
        let named = "the package \(title) \(version)"
        if let refusal = self.settings.refusal { return .refused("\(named) cannot be installed: \(refusal)") }
        if self.attributes[self.key("size")] == nil, let url = self.attributes[self.key("url")]?.stringValue {
            return .refused("\(named) is a URL package (\(String(url.prefix(200)))); the agent downloads packages over MQTT only, where ThingsBoard refuses URL packages: upload the file itself to ThingsBoard (OTA updates, package without a URL) and assign that")
        }
        guard title == self.settings.title || !self.isFirmware else {
            return .refused("\(named) is titled \"\(title)\", but this agent runs \"\(self.settings.title)\" ([ota] title): assign a package titled \"\(self.settings.title)\", or set [ota] title if this board's firmware is meant to change name")
        }
        guard let sizeValue = self.attributes[self.key("size")] else { return .waiting }
        guard let size = sizeValue.int64Value, size > 0, size <= Int64(Self.maximumPackageSize) else {
            return .refused("\(named) has \(self.key("size")) \(String(sizeValue.serialized.prefix(40))); the agent takes packages of 1 byte to \(Self.maximumPackageSize) bytes")
        }
        let algorithmName = self.attributes[self.key("checksum_algorithm")]?.stringValue ?? "SHA256"
        guard let algorithm = ChecksumAlgorithm(name: algorithmName) else {
            return .refused("\(named) has the checksum algorithm \"\(String(algorithmName.prefix(40)))\", which the agent does not know (it knows \(ChecksumAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))): upload it again with one of those")
        }
        guard let checksum = self.attributes[self.key("checksum")]?.stringValue else { return .waiting }
        guard checksum.utf8.count == algorithm.digestLength * 2, checksum.utf8.allSatisfy(Self.isHex) else {
            return .refused("\(named) has \(self.key("checksum")) \"\(String(checksum.prefix(140)))\", which is not a \(algorithm.rawValue) checksum (\(algorithm.digestLength * 2) hex digits): upload it again and let ThingsBoard compute the checksum")
        }
        return .package(OTAPackage(title: title, version: version, size: Int(size), algorithm: algorithm, checksum: checksum))
    }

    static func isHex(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte) }

    /// The runtime could not start or write the partial file (`.begin`, `.append`, `.sync`, `.markVerified`).
    public mutating func storageFailed(_ reason: String) -> [Action] {
        let package: OTAPackage?
        switch self.stage {
        case .downloading(let d): package = d.package
        case .failed(let p, _, _): package = p
        case .verified(let p): package = p
        case .updating(let p): package = p
        case .idle: package = nil
        }
        return self.fail(package, reason, discard: true)
    }

    /// The runtime handed the chunk request to the link: its timeout starts.
    public mutating func requestSent(now: Duration) {
        guard case .downloading(var d) = self.stage, let awaiting = d.awaiting else { return }
        d.awaiting = (awaiting.index, now + self.settings.chunkTimeout)
        self.stage = .downloading(d)
    }

    /// A message on `v2/fw/response/{id}/chunk/{n}`.
    public mutating func chunk(topic: String, payload: [UInt8], now: Duration) -> [Action] {
        guard let (id, index) = self.topics.parseResponse(topic), case .downloading(var d) = self.stage,
            id == self.requestID, let awaiting = d.awaiting, index == awaiting.index
        else {
            self.ignoredChunks &+= 1
            return []
        }
        let chunkSize = self.settings.chunkSize
        let start = index * chunkSize
        let expected = min(chunkSize, d.package.size - start)
        if payload.isEmpty {
            return self.fail(d.package, "the server's package ends at \(start) bytes, but \(self.key("size")) announced \(d.package.size): the package in ThingsBoard does not match its attributes; upload it again and assign it", discard: true)
        }
        guard payload.count == expected else {
            d.attempts += 1
            let problem = "chunk \(index) of \(d.package) came with \(payload.count) bytes instead of \(expected)"
            guard d.attempts < self.settings.maxAttempts else {
                return self.fail(d.package, "\(problem), \(d.attempts) times: the server serves another package than it announced; upload it again and assign it", discard: true)
            }
            self.stage = .downloading(d)
            return [.log(.warning, "\(problem); asking for it again")] + self.requestNext()
        }
        let skip = d.received - start
        let fresh = skip == 0 ? payload : Array(payload[skip...])
        d.checksum.update(fresh)
        d.received += fresh.count
        d.attempts = 0
        d.awaiting = nil
        var actions: [Action] = [.append(fresh)]
        let complete = d.received == d.package.size
        if complete || d.received - d.durable >= self.settings.syncEvery {
            d.durable = d.received
            actions.append(.sync(durableBytes: d.received))
        }
        self.stage = .downloading(d)
        guard complete else { return actions + self.progress(d) + self.requestNext() }
        return actions + self.finish(d)
    }

    /// The whole package is durable: DOWNLOADED, then the checksum.
    mutating func finish(_ d: Download) -> [Action] {
        let actions: [Action] = [.report(.object([(self.key("state"), .string("DOWNLOADED")), (self.key("progress"), .integer(100))]))]
        let digest = d.checksum.hexDigest()
        guard digest == d.package.checksum else {
            return actions + self.fail(d.package, "checksum mismatch: the \(d.package.algorithm.rawValue) of the \(d.package.size) bytes downloaded is \(digest), but \(self.key("checksum")) is \(d.package.checksum); the package or its checksum in ThingsBoard is wrong: upload the package again (let ThingsBoard compute the checksum) and assign it", discard: true)
        }
        self.stage = .verified(d.package)
        self.inspecting = true
        if !self.isFirmware {
            return actions + [
                .markVerified,
                .report(.object([(self.key("state"), .string("VERIFIED"))])),
                .report(.object([(self.key("state"), .string("UPDATING"))])),
                .log(.info, "software package \(d.package) downloaded and verified (\(d.package.algorithm.rawValue) \(digest)); installing it with [ota.software] command"),
                .inspect(d.package),
            ]
        }
        return actions + [
            .markVerified,
            .report(.object([(self.key("state"), .string("VERIFIED"))])),
            .log(.info, "firmware package \(d.package) downloaded and verified (\(d.package.algorithm.rawValue) \(digest)); checking that it is a tb-agent for this board"),
            .inspect(d.package),
        ]
    }

    /// A message on `v2/fw/error`: ThingsBoard then closes the session.
    public mutating func serverError(_ payload: [UInt8]) -> [Action] {
        let answer = String(decoding: payload.prefix(80), as: UTF8.self)
        let package: OTAPackage?
        switch self.stage {
        case .downloading(let d): package = d.package
        default: return [.log(.warning, "the server answered \(answer) on \(OTATopics.errorTopic) with no download under way")]
        }
        let reason: String
        switch answer {
        case "NOT_FOUND":
            reason = "the server has no package for this device (NOT_FOUND): it was unassigned while downloading; assign it again"
        case "PAYLOAD_TOO_LARGE":
            reason = "the server refused chunks of \(self.settings.chunkSize) bytes (PAYLOAD_TOO_LARGE): lower [ota] chunk_size below the server's transport.mqtt.netty.max_payload_size"
        case "FAILURE":
            reason = "the server could not serve the package over MQTT (FAILURE): it is a URL package or its data is missing; upload the file itself and assign it"
        default:
            reason = "the server answered the chunk request with \"\(answer)\" on \(OTATopics.errorTopic)"
        }
        return self.fail(package, reason, discard: true)
    }

    public mutating func tick(now: Duration) -> [Action] {
        guard case .downloading(var d) = self.stage, let awaiting = d.awaiting, let due = awaiting.due, due <= now else { return [] }
        d.attempts += 1
        guard d.attempts < self.settings.maxAttempts else {
            let reason = "no answer to the request for chunk \(awaiting.index) of \(d.package) after \(d.attempts) tries of \(self.settings.chunkTimeout) each; the download resumes at byte \(d.received) on the next connection (check the server's load and the network)"
            d.awaiting = nil
            d.attempts = 0
            self.stage = .failed(d.package, reason, partial: d)
            return [.report(.object([(self.key("state"), .string("FAILED")), (self.key("error"), .string(reason))]))]
        }
        self.stage = .downloading(d)
        return [.log(.warning, "no answer to the request for chunk \(awaiting.index) within \(self.settings.chunkTimeout); asking again (\(d.attempts) of \(self.settings.maxAttempts - 1))")]
            + self.requestNext()
    }

    // MARK: helpers

    mutating func resume(_ partial: Download, now: Duration) -> [Action] {
        // In this process the file holds every byte received (a restart trusts only the durable ones: `Restored`).
        var d = partial
        d.attempts = 0
        d.awaiting = nil
        d.reportedPercent = -1
        self.stage = .downloading(d)
        if d.received == d.package.size { return self.finish(d) }  // stopped between the last sync and the verification
        return [.log(.info, "resuming the download of \(d.package) at byte \(d.received) (chunk \(d.received / self.settings.chunkSize))")]
            + self.progress(d) + self.requestNext()
    }

    /// The request for the chunk holding the first byte not received.
    mutating func requestNext() -> [Action] {
        guard case .downloading(var d) = self.stage, self.online else { return [] }
        let index = d.received / self.settings.chunkSize
        d.awaiting = (index, nil)
        self.stage = .downloading(d)
        return [.request(topic: self.topics.request(requestID: self.requestID, index: index), payload: Array(String(self.settings.chunkSize).utf8))]
    }

    func downloading(_ d: Download) -> [(String, JSONValue)] {
        [(self.key("state"), .string("DOWNLOADING")), (self.key("progress"), .integer(Int64(d.received * 100 / d.package.size)))]
    }

    /// DOWNLOADING with `fw_progress`, at every `progressStep` percent.
    mutating func progress(_ d: Download) -> [Action] {
        let percent = d.received * 100 / d.package.size
        guard d.reportedPercent < 0 || percent / self.settings.progressStep > d.reportedPercent / self.settings.progressStep else { return [] }
        guard case .downloading(var current) = self.stage else { return [] }
        current.reportedPercent = percent
        self.stage = .downloading(current)
        return [.report(.object(self.downloading(d)))]
    }

    mutating func fail(_ package: OTAPackage?, _ reason: String, discard: Bool) -> [Action] {
        self.stage = .failed(package, reason, partial: nil)
        var actions: [Action] = [.report(.object([(self.key("state"), .string("FAILED")), (self.key("error"), .string(reason))]))]
        actions.append(.log(.warning, "\(self.word) update failed: \(reason)"))
        if discard { actions.append(.discard) }
        return actions
    }

    mutating func abandon(_ why: String) -> [Action] {
        self.stage = .idle
        return [.log(.info, "stopped the \(self.word) download: \(why)"), .discard]
    }
}

extension OTADownload {
    /// Why a download of `package` cannot start with `free` bytes free in `directory`, or nil: the package and
    /// `spaceMargin` must fit (the spool and the logs share the file system).
    public static func spaceProblem(package: OTAPackage, free: Int, directory: String) -> String? {
        let needed = package.size + Self.spaceMargin
        guard free < needed else { return nil }
        return "not enough space in \(directory) for \(package): \(DataSize.text(needed)) needed (the package and a \(DataSize.text(Self.spaceMargin)) margin), \(DataSize.text(free)) free; free space on that file system (or move [device] state_dir to a larger one) and assign the package again, or restart the agent"
    }
}

/// Byte counts for people: "512 KiB", "3.2 MiB".
public enum DataSize {
    public static func text(_ bytes: Int) -> String {
        if bytes < 1 << 10 { return "\(bytes) bytes" }
        if bytes < 1 << 20 { return "\(bytes >> 10) KiB" }
        let tenths = (bytes * 10) >> 20
        return tenths % 10 == 0 || tenths >= 1000 ? "\(tenths / 10) MiB" : "\(tenths / 10).\(tenths % 10) MiB"
    }
}
