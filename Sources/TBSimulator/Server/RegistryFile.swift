#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TBJSON

/// The device registry file: JSON a person can read, written crash-safely (temporary file, fsync, rename, fsync of
/// the folder) so that a restart of the simulator remembers the devices it created.
enum RegistryFile {
    /// The registry the simulator starts with: the configured profiles, the file's devices (when the file exists),
    /// then the configured pre-provisioned devices whose names are not taken yet.
    static func load(configuration: SimulatorConfiguration) throws(SimulatorError) -> DeviceRegistry {
        var registry = DeviceRegistry()
        for profile in configuration.profiles { try registry.upsertProfile(profile) }
        if let path = configuration.registryPath, FileManager.default.fileExists(atPath: path) {
            let json: JSONValue
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                json = try JSONValue.parse(Array(data))
            } catch {
                throw SimulatorError("cannot read registry file \(path): \(error); fix or delete it")
            }
            do {
                try self.merge(json, into: &registry)
            } catch {
                throw SimulatorError("registry file \(path): \(error.description); fix or delete it")
            }
        }
        for device in configuration.devices where registry.device(named: device.name) == nil {
            try registry.addDevice(device)
        }
        return registry
    }

    static func merge(_ json: JSONValue, into registry: inout DeviceRegistry) throws(SimulatorError) {
        for profile in json["profiles"]?.arrayValue ?? [] where registry.profile(named: profile["name"]?.stringValue ?? "") == nil {
            guard let name = profile["name"]?.stringValue else { throw SimulatorError("a profile has no name") }
            let strategyName = profile["strategy"]?.stringValue ?? ProvisionStrategy.allowCreateNewDevices.rawValue
            guard let strategy = ProvisionStrategy(rawValue: strategyName) else {
                throw SimulatorError("profile \"\(name)\" has unknown strategy \"\(strategyName)\"")
            }
            var rateLimits: RateLimits? = nil
            if let limits = profile["rateLimits"], !limits.isNull { rateLimits = try RateLimits(json: limits) }
            let version = try profile["thingsboardVersion"]?.stringValue.map { text throws(SimulatorError) in try ThingsBoardVersion(text) }
            let x509 = try profile["x509"].flatMap { json throws(SimulatorError) in json.isNull ? nil : try X509ChainSettings(json: json) }
            try registry.upsertProfile(DeviceProfile(name: name, provisionKey: profile["provisionKey"]?.stringValue,
                                                     provisionSecret: profile["provisionSecret"]?.stringValue, strategy: strategy,
                                                     rateLimits: rateLimits, thingsboardVersion: version, x509: x509))
        }
        for item in json["devices"]?.arrayValue ?? [] {
            guard let name = item["name"]?.stringValue, let profile = item["profile"]?.stringValue else {
                throw SimulatorError("a device has no name or profile")
            }
            var credentials: DeviceCredentials? = nil
            if let c = item["credentials"], !c.isNull { credentials = try DeviceCredentials(json: c) }
            let device = SimDevice(
                name: name, profile: profile, credentials: credentials,
                provisionState: item["provisionState"]?.stringValue, gateway: item["gateway"]?.boolValue ?? false,
                clientAttributes: item["clientAttributes"]?.objectMembers ?? [],
                sharedAttributes: item["sharedAttributes"]?.objectMembers ?? [],
                createdTime: item["createdTime"]?.int64Value ?? 0)
            if registry.profile(named: profile) == nil {
                try registry.upsertProfile(DeviceProfile(name: profile, strategy: .disabled))
            }
            try registry.addDevice(device)
        }
    }

    static func json(_ registry: DeviceRegistry) -> JSONValue {
        .object([
            ("version", .integer(1)),
            ("profiles", .array(registry.profiles.map { p in
                .object([
                    ("name", .string(p.name)),
                    ("provisionKey", p.provisionKey.map(JSONValue.string) ?? .null),
                    ("provisionSecret", p.provisionSecret.map(JSONValue.string) ?? .null),
                    ("strategy", .string(p.strategy.rawValue)),
                    ("rateLimits", p.rateLimits?.json ?? .null),
                    ("thingsboardVersion", p.thingsboardVersion.map { .string($0.description) } ?? .null),
                    ("x509", p.x509?.json ?? .null),
                ])
            })),
            ("devices", .array(registry.devices.map { d in
                .object([
                    ("name", .string(d.name)),
                    ("profile", .string(d.profile)),
                    ("credentials", d.credentials?.json ?? .null),
                    ("provisionState", d.provisionState.map(JSONValue.string) ?? .null),
                    ("gateway", .bool(d.gateway)),
                    ("createdTime", .integer(d.createdTime)),
                    ("clientAttributes", .object(d.clientAttributes)),
                    ("sharedAttributes", .object(d.sharedAttributes)),
                ])
            })),
        ])
    }

    /// Writes the registry: a temporary file created 0600 beside the target, fsync, rename over it, fsync the folder.
    static func save(_ registry: DeviceRegistry, to path: String) throws(SimulatorError) {
        var text = self.json(registry).serialized
        text += "\n"
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw self.failure("create a temporary file for", path) }
        var ok = true
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return write(fd, base + offset, raw.count - offset)
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                ok = false
                break
            }
            offset += n
        }
        if ok && fsync(fd) != 0 { ok = false }
        let writeError = errno
        close(fd)
        guard ok else {
            unlink(temporary)
            errno = writeError
            throw self.failure("write", path)
        }
        guard rename(temporary, path) == 0 else {
            let error = self.failure("replace", path)
            unlink(temporary)
            throw error
        }
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    static func failure(_ action: String, _ path: String) -> SimulatorError {
        SimulatorError("cannot \(action) registry file \(path): \(String(cString: strerror(errno))); check that its folder exists and is writable")
    }
}
