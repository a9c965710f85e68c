import Foundation
import TBChecksum
import TBJSON

/// An OTA package's type (`OtaPackageType`): firmware keys start with `fw_`, software keys with `sw_`.
public enum OtaPackageType: String, Sendable, Hashable, CaseIterable {
    case firmware = "FIRMWARE"
    case software = "SOFTWARE"

    /// `fw` or `sw`: the prefix of the attribute and telemetry keys and of the `v2/fw/...` topics.
    public var prefix: String { self == .firmware ? "fw" : "sw" }

    /// The type of a `v2/fw/...` or `v2/sw/...` topic's prefix.
    init?(prefix: String) {
        switch prefix {
        case "fw": self = .firmware
        case "sw": self = .software
        default: return nil
        }
    }
}

/// An OTA package as ThingsBoard stores it (`OtaPackage`): an uploaded binary with its checksum, or a URL the device
/// downloads from itself.
public struct OtaPackage: Sendable {
    public var id: String
    public var type: OtaPackageType
    public var title: String
    public var version: String
    public var tag: String?
    /// Set for a URL package (no data: an MQTT chunk request gets `FAILURE`).
    public var url: String?
    public var checksumAlgorithm: ChecksumAlgorithm?
    /// ThingsBoard's text: lower-case hex in Guava's byte order.
    public var checksum: String?
    /// The binary, once uploaded.
    public var data: [UInt8]?
    public var createdTime: Int64

    /// Whether it can be assigned: ThingsBoard refuses a package with neither data nor a URL.
    public var isAssignable: Bool { self.url != nil || self.data != nil }

    /// The package without its data, for the control interface.
    public var json: JSONValue {
        .object([
            ("id", .string(self.id)), ("type", .string(self.type.rawValue)), ("title", .string(self.title)),
            ("version", .string(self.version)), ("tag", self.tag.map(JSONValue.string) ?? .null),
            ("url", self.url.map(JSONValue.string) ?? .null),
            ("dataSize", self.data.map { .integer(Int64($0.count)) } ?? .null),
            ("checksumAlgorithm", self.checksumAlgorithm.map { .string($0.rawValue) } ?? .null),
            ("checksum", self.checksum.map(JSONValue.string) ?? .null),
            ("createdTime", .integer(self.createdTime)),
        ])
    }

    /// The shared attributes ThingsBoard saves when it pushes this package to a device, in its order, and the keys it
    /// deletes first (`DefaultOtaPackageStateService.updateAttributes`).
    public var sharedAttributes: (set: [(String, JSONValue)], deleted: [String]) {
        let p = self.type.prefix
        var set: [(String, JSONValue)] = [(p + "_title", .string(self.title)), (p + "_version", .string(self.version))]
        if let tag = self.tag { set.append((p + "_tag", .string(tag))) }
        var deleted: [String] = []
        if let url = self.url {
            set.append((p + "_url", .string(url)))
            deleted.append(p + "_size")
            if let algorithm = self.checksumAlgorithm, let checksum = self.checksum {
                set.append((p + "_checksum_algorithm", .string(algorithm.rawValue)))
                set.append((p + "_checksum", .string(checksum)))
            } else {
                deleted += [p + "_checksum_algorithm", p + "_checksum"]
            }
        } else {
            set.append((p + "_size", .integer(Int64(self.data?.count ?? 0))))
            set.append((p + "_checksum_algorithm", .string((self.checksumAlgorithm ?? .sha256).rawValue)))
            set.append((p + "_checksum", .string(self.checksum ?? "")))
            deleted.append(p + "_url")
        }
        return (set, deleted)
    }

    /// Every shared attribute key of a type (`OtaPackageUtil.getAttributeKeys`), deleted when a device is left with
    /// no package.
    public static func allAttributeKeys(_ type: OtaPackageType) -> [String] {
        ["title", "version", "tag", "ts", "state", "size", "checksum", "checksum_algorithm", "url"].map { type.prefix + "_" + $0 }
    }

    /// ThingsBoard's `CaffeineOtaPackageCache.get`: the whole package for a chunk size below 1; else the chunk's
    /// bytes, empty past the end. `nil` when Java's `int` arithmetic overflows into a negative offset (ThingsBoard's
    /// `System.arraycopy` then throws and nothing is sent).
    public static func chunk(of data: [UInt8], size: Int32, index: Int32) -> [UInt8]? {
        if size < 1 { return data }
        guard !data.isEmpty else { return [] }
        let start = size &* index
        let length = Int32(truncatingIfNeeded: data.count)
        let count = min(length &- start, size)
        guard start < length, count > 0 else { return [] }
        guard start >= 0 else { return nil }
        return Array(data[Int(start)..<Int(start) + Int(count)])
    }
}

/// What a person uploads through the control interface (`POST /otaPackages`).
public struct OtaUpload: Sendable {
    /// The package as given; its `id` and `createdTime` are set when it is added.
    public var package: OtaPackage
    /// Keep a given checksum that does not match the data (ThingsBoard refuses it): for testing a device's check.
    public var acceptWrongChecksum = false

    public init(type: OtaPackageType, title: String, version: String) {
        self.package = OtaPackage(id: "", type: type, title: title, version: version, tag: nil, url: nil,
                                  checksumAlgorithm: nil, checksum: nil, data: nil, createdTime: 0)
    }

    /// Reads `{"title","version","type","tag","checksumAlgorithm","checksum","data" (base64) or "url",
    /// "acceptWrongChecksum"}`.
    public init(json: JSONValue) throws(SimulatorError) {
        guard case .object = json else { throw SimulatorError("an OTA package must be a JSON object") }
        guard let title = json["title"]?.stringValue, !title.trimmingWhitespace().isEmpty else {
            throw SimulatorError("an OTA package needs a non-empty \"title\"")
        }
        guard let version = json["version"]?.stringValue, !version.trimmingWhitespace().isEmpty else {
            throw SimulatorError("an OTA package needs a non-empty \"version\"")
        }
        let typeName = json["type"]?.stringValue ?? OtaPackageType.firmware.rawValue
        guard let type = OtaPackageType(rawValue: typeName) else {
            throw SimulatorError("unknown OTA package type \"\(typeName)\": use FIRMWARE or SOFTWARE")
        }
        self.init(type: type, title: title, version: version)
        self.package.tag = json["tag"]?.stringValue
        self.package.url = json["url"]?.stringValue
        if let name = json["checksumAlgorithm"]?.stringValue {
            self.package.checksumAlgorithm = try Self.algorithm(name)
        }
        self.package.checksum = json["checksum"]?.stringValue
        if let text = json["data"]?.stringValue {
            guard let decoded = Data(base64Encoded: text) else {
                throw SimulatorError("\"data\" is not base64 (upload large packages raw with POST /otaPackages/ID/data)")
            }
            self.package.data = [UInt8](decoded)
        }
        self.acceptWrongChecksum = json["acceptWrongChecksum"]?.boolValue ?? false
        if self.package.url != nil && self.package.data != nil {
            throw SimulatorError("an OTA package has either \"data\" or a \"url\", not both")
        }
    }

    static func algorithm(_ name: String) throws(SimulatorError) -> ChecksumAlgorithm {
        guard let algorithm = ChecksumAlgorithm(name: name) else {
            throw SimulatorError("unknown checksum algorithm \"\(name)\": use \(ChecksumAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return algorithm
    }
}

/// A package from the configuration file, with the profiles and devices it is assigned to at start.
public struct OtaPackageSeed: Sendable {
    public var upload: OtaUpload
    public var profiles: [String]
    public var devices: [String]

    public init(upload: OtaUpload, profiles: [String] = [], devices: [String] = []) {
        self.upload = upload
        self.profiles = profiles
        self.devices = devices
    }
}

/// One change of a device's OTA state, as telemetry: what the server recorded (QUEUED, INITIATED and the target)
/// or what the device reported (`fw_state`, `fw_error`, `current_fw_*`).
public struct OtaStateRecord: Sendable {
    public enum Source: String, Sendable { case server, device }
    public var ts: Int64
    public var source: Source
    public var values: [(String, JSONValue)]

    public var json: JSONValue {
        .object([("ts", .integer(self.ts)), ("source", .string(self.source.rawValue)), ("values", .object(self.values))])
    }

    /// Whether a telemetry key belongs to the OTA history of `type`.
    static func isOtaKey(_ key: String, _ type: OtaPackageType) -> Bool {
        let p = type.prefix
        return key.hasPrefix(p + "_") || key.hasPrefix("current_" + p + "_") || key.hasPrefix("target_" + p + "_")
    }
}

/// The tenant's OTA packages, their assignments to devices and profiles, and each device's OTA history. A plain
/// value with no I/O; bounded in count, size and history.
public struct OtaBook: Sendable {
    public struct Limits: Sendable {
        /// The largest package accepted.
        public var maxPackageSize = 64 << 20
        /// How many packages may exist.
        public var maxPackages = 64
        /// The data of all packages together.
        public var maxTotalBytes = 512 << 20
        /// OTA state records kept per device (older ones are dropped).
        public var historyPerDevice = 1_000

        public init() {}
    }

    public var limits: Limits
    public private(set) var packages: [OtaPackage] = []
    private var nextID = 1
    /// Device name → type → package id.
    public private(set) var deviceAssignments: [String: [OtaPackageType: String]] = [:]
    /// Profile name → type → package id.
    public private(set) var profileAssignments: [String: [OtaPackageType: String]] = [:]
    public private(set) var history: [String: [OtaStateRecord]] = [:]

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public func package(id: String) -> OtaPackage? { self.packages.first { $0.id == id } }

    var totalBytes: Int { self.packages.reduce(0) { $0 + ($1.data?.count ?? 0) } }

    /// Adds a package (`OtaPackageService.saveOtaPackage` with its validation): title and version unique, the
    /// checksum computed when not given and checked when given.
    public mutating func add(_ upload: OtaUpload, now: Int64) throws(SimulatorError) -> OtaPackage {
        guard self.packages.count < self.limits.maxPackages else {
            throw SimulatorError("already \(self.limits.maxPackages) OTA packages: the simulator keeps no more")
        }
        let given = upload.package
        if self.packages.contains(where: { $0.title == given.title && $0.version == given.version }) {
            throw SimulatorError("an OTA package titled \"\(given.title)\" with version \"\(given.version)\" exists already")
        }
        var package = given
        package.id = "ota-\(self.nextID)"
        package.createdTime = now
        package.data = nil
        if package.url != nil, package.checksum != nil, package.checksumAlgorithm == nil {
            package.checksumAlgorithm = .sha256
        }
        if let data = given.data {
            try self.attach(data, to: &package, algorithm: given.checksumAlgorithm, checksum: given.checksum,
                            acceptWrongChecksum: upload.acceptWrongChecksum)
        }
        self.nextID += 1
        self.packages.append(package)
        return package
    }

    /// Uploads a package's binary (`POST /api/otaPackage/{id}?checksumAlgorithm=..&checksum=..`).
    public mutating func setData(packageID: String, data: [UInt8], algorithm: ChecksumAlgorithm?, checksum: String?,
                                 acceptWrongChecksum: Bool = false) throws(SimulatorError) -> OtaPackage {
        guard let index = self.packages.firstIndex(where: { $0.id == packageID }) else {
            throw SimulatorError("no OTA package \"\(packageID)\"")
        }
        var package = self.packages[index]
        guard package.url == nil else { throw SimulatorError("OTA package \"\(packageID)\" is a URL package: it has no data") }
        guard package.data == nil else { throw SimulatorError("OTA package \"\(packageID)\" has its data already") }
        try self.attach(data, to: &package, algorithm: algorithm ?? package.checksumAlgorithm, checksum: checksum,
                        acceptWrongChecksum: acceptWrongChecksum)
        self.packages[index] = package
        return package
    }

    private func attach(_ data: [UInt8], to package: inout OtaPackage, algorithm: ChecksumAlgorithm?, checksum: String?,
                        acceptWrongChecksum: Bool) throws(SimulatorError) {
        guard data.count <= self.limits.maxPackageSize else {
            throw SimulatorError("OTA package of \(data.count) bytes is over the limit of \(self.limits.maxPackageSize)")
        }
        guard self.totalBytes + data.count <= self.limits.maxTotalBytes else {
            throw SimulatorError("OTA packages would hold more than \(self.limits.maxTotalBytes) bytes together")
        }
        let algorithm = algorithm ?? .sha256
        let computed = algorithm.hex(of: data)
        if let checksum, !checksum.isEmpty, checksum != computed, !acceptWrongChecksum {
            throw SimulatorError("wrong OTA package file: its \(algorithm.rawValue) is \(computed), not the \(checksum) given (or say \"acceptWrongChecksum\": true to serve a wrong checksum on purpose)")
        }
        package.data = data
        package.checksumAlgorithm = algorithm
        package.checksum = (checksum?.isEmpty ?? true) ? computed : checksum
    }

    /// The package a device gets for a type: its own, else its profile's (`OtaPackageUtil.getOtaPackageId`).
    public func effectivePackage(device: String, profile: String?, type: OtaPackageType) -> OtaPackage? {
        if let id = self.deviceAssignments[device]?[type] { return self.package(id: id) }
        if let profile, let id = self.profileAssignments[profile]?[type] { return self.package(id: id) }
        return nil
    }

    /// Whether the device has a package of its own for the type (a profile assignment then leaves it alone).
    public func hasOwnAssignment(device: String, type: OtaPackageType) -> Bool {
        self.deviceAssignments[device]?[type] != nil
    }

    /// Checks a package may be assigned as `type` (`DeviceServiceImpl`'s validation).
    public func assignable(_ packageID: String, as type: OtaPackageType) throws(SimulatorError) -> OtaPackage {
        guard let package = self.package(id: packageID) else { throw SimulatorError("no OTA package \"\(packageID)\"") }
        guard package.type == type else {
            throw SimulatorError("can't assign \(type.rawValue.lowercased()) with type: \(package.type.rawValue)")
        }
        guard package.isAssignable else {
            throw SimulatorError("can't assign \(type.rawValue.lowercased()) with empty data: upload it first (POST /otaPackages/\(packageID)/data)")
        }
        return package
    }

    public mutating func assign(device: String, type: OtaPackageType, packageID: String?) {
        self.deviceAssignments[device, default: [:]][type] = packageID
        if self.deviceAssignments[device]?.isEmpty == true { self.deviceAssignments[device] = nil }
    }

    public mutating func assign(profile: String, type: OtaPackageType, packageID: String?) {
        self.profileAssignments[profile, default: [:]][type] = packageID
        if self.profileAssignments[profile]?.isEmpty == true { self.profileAssignments[profile] = nil }
    }

    /// Records a state change; a device's history keeps its last `historyPerDevice` records.
    public mutating func record(device: String, _ record: OtaStateRecord) {
        var list = self.history[device, default: []]
        list.append(record)
        if list.count > self.limits.historyPerDevice { list.removeFirst(list.count - self.limits.historyPerDevice) }
        self.history[device] = list
    }

    public mutating func forget(device: String) {
        self.deviceAssignments[device] = nil
        self.history[device] = nil
    }

    /// A device's OTA state for the control interface: per type the package in force, the `*_state` values in order
    /// and the whole history.
    public func json(device: String, profile: String?) -> JSONValue {
        let records = self.history[device] ?? []
        var members: [(String, JSONValue)] = [("device", .string(device))]
        for type in OtaPackageType.allCases {
            let key = type.prefix + "_state"
            let mine = records.compactMap { record -> OtaStateRecord? in
                let values = record.values.filter { OtaStateRecord.isOtaKey($0.0, type) }
                return values.isEmpty ? nil : OtaStateRecord(ts: record.ts, source: record.source, values: values)
            }
            let states = mine.flatMap { $0.values.filter { $0.0 == key }.map(\.1) }
            members.append((type == .firmware ? "firmware" : "software", .object([
                ("package", self.effectivePackage(device: device, profile: profile, type: type)?.json ?? .null),
                ("assignedTo", .string(self.hasOwnAssignment(device: device, type: type) ? "device"
                    : (self.effectivePackage(device: device, profile: profile, type: type) != nil ? "profile" : "none"))),
                ("states", .array(states)),
                ("history", .array(mine.map(\.json))),
            ])))
        }
        return .object(members)
    }
}
