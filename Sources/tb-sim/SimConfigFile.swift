import Foundation
import TBChecksum
import TBSimulator
import TBTOML

/// Reads tb-sim's TOML configuration file into a ``SimulatorConfiguration``.
///
/// ```toml
/// [server]
/// host = "127.0.0.1"
/// mqtt_port = 1883          # 0 picks a free port
/// control_port = 8090       # 0 picks a free port
/// max_packet_size = 65536
/// registry = "tb-sim-registry.json"
/// event_log = "tb-sim-events.jsonl"
///
/// [timings]                 # seconds, or text such as "500ms", "60s", "10m"
/// provision_close_delay = 60
/// client_rpc_timeout = 60
/// inactivity_timeout = 600
/// rpc_delivery_timeout = 10
/// server_rpc_timeout = 10
///
/// [claiming]                # ThingsBoard's security.claim settings
/// allow_by_default = true   # false: only devices given claimingAllowed (control API) may register a claim
/// duration = "24h"          # the window of a claim request without a positive durationMs
/// cache_ttl = "24h"         # how long a registered claim blocks a new one (the claim cache's time to live)
///
/// [rate_limits]             # optional, off by default: "cap:seconds,cap:seconds" per device (the tenant profile's)
/// messages = "20:1,600:60"
/// telemetry_messages = "10:1"
/// telemetry_data_points = "100:1"
///
/// [[profiles]]
/// name = "sensors"
/// provision_key = "sensors-key"
/// provision_secret = "sensors-secret"
/// strategy = "ALLOW_CREATE_NEW_DEVICES"   # or CHECK_PRE_PROVISIONED_DEVICES, DISABLED
/// thingsboard_version = "3.7"             # optional: before 3.8 getSessionLimits is an ordinary client-side RPC
/// [profiles.rate_limits]                  # optional: replaces [rate_limits] for this profile's devices
/// messages = "5:1"
///
/// [[devices]]
/// name = "board-0001"
/// profile = "sensors"
/// credentials_type = "ACCESS_TOKEN"        # or MQTT_BASIC, X509_CERTIFICATE
/// token = "board-0001-token"               # MQTT_BASIC: client_id, username, password; X509: certificate
///
/// [ota]                     # bounds on OTA packages (these are the defaults)
/// max_package_size = 67108864
/// max_packages = 64
///
/// [[ota_packages]]          # uploaded and assigned at start
/// title = "tb-agent"
/// version = "1.4.0"
/// type = "FIRMWARE"                        # or SOFTWARE
/// file = "tb-agent_1.4.0_arm64.deb"        # or url = "https://…" (the device downloads it itself)
/// checksum_algorithm = "SHA256"            # optional: MD5, SHA256, SHA384, SHA512, CRC32, MURMUR3_32, MURMUR3_128
/// checksum = "…"                           # optional: checked against the file; computed when absent
/// tag = "stable"                           # optional
/// profiles = ["sensors"]                   # optional: assigned to these profiles
/// devices = ["board-0001"]                 # optional: assigned to these devices
/// ```
enum SimConfigFile {
    static func parse(_ text: String, path: String, into configuration: inout SimulatorConfiguration) throws(SimulatorError) {
        let root: TOMLTable
        do {
            root = try TOMLParser.parse(text)
        } catch {
            let key = TOMLPathComponent.render(error.keyPath)
            throw SimulatorError("\(path):\(error.position): " + (key.isEmpty ? "" : "\(key): ") + error.message)
        }
        let reader = Reader(path: path)
        try reader.checkKeys(root, "", allowed: ["server", "timings", "claiming", "rate_limits", "profiles", "devices", "ota",
                                                 "ota_packages"])
        if let server = try reader.table(root, "server") {
            try reader.checkKeys(server, "server.", allowed: ["host", "mqtt_port", "control_port", "max_packet_size", "registry", "event_log",
                                                             "mqtts_port", "tls_cert_file", "tls_key_file"])
            if let port = try reader.port(server, "server.mqtts_port") { configuration.mqttsPort = port }
            if let file = try reader.string(server, "server.tls_cert_file") { configuration.tlsCertificateFile = file }
            if let file = try reader.string(server, "server.tls_key_file") { configuration.tlsKeyFile = file }
            if let host = try reader.string(server, "server.host") { configuration.host = host }
            if let port = try reader.port(server, "server.mqtt_port") { configuration.mqttPort = port }
            if let port = try reader.port(server, "server.control_port") { configuration.controlPort = port }
            if let size = try reader.int(server, "server.max_packet_size") {
                guard size > 0 && size <= 268_435_455 else {
                    throw reader.problem("server.max_packet_size", "must be between 1 and 268435455 bytes")
                }
                configuration.maxPacketSize = size
            }
            if let registry = try reader.string(server, "server.registry") { configuration.registryPath = registry }
            if let log = try reader.string(server, "server.event_log") { configuration.eventLogPath = log }
        }
        if let timings = try reader.table(root, "timings") {
            try reader.checkKeys(timings, "timings.", allowed: ["provision_close_delay", "client_rpc_timeout", "inactivity_timeout",
                                                               "rpc_delivery_timeout", "server_rpc_timeout"])
            if let d = try reader.duration(timings, "timings.provision_close_delay") { configuration.timings.provisionCloseDelay = d }
            if let d = try reader.duration(timings, "timings.client_rpc_timeout") { configuration.timings.clientRPCTimeout = d }
            if let d = try reader.duration(timings, "timings.inactivity_timeout") { configuration.timings.inactivityTimeout = d }
            if let d = try reader.duration(timings, "timings.rpc_delivery_timeout") { configuration.timings.rpcDeliveryTimeout = d }
            if let d = try reader.duration(timings, "timings.server_rpc_timeout") { configuration.timings.serverRPCTimeout = d }
        }
        if let claiming = try reader.table(root, "claiming") {
            try reader.checkKeys(claiming, "claiming.", allowed: ["allow_by_default", "duration", "cache_ttl"])
            if let b = try reader.bool(claiming, "claiming.allow_by_default") { configuration.claiming.allowClaimingByDefault = b }
            if let d = try reader.duration(claiming, "claiming.duration") { configuration.claiming.defaultDuration = d }
            if let d = try reader.duration(claiming, "claiming.cache_ttl") { configuration.claiming.cacheTimeToLive = d }
        }
        if let limits = try reader.table(root, "rate_limits") {
            configuration.rateLimits = try reader.rateLimits(limits, "rate_limits.")
        }
        for (index, table) in try reader.tables(root, "profiles").enumerated() {
            let at = "profiles[\(index)]."
            try reader.checkKeys(table, at, allowed: ["name", "provision_key", "provision_secret", "strategy", "rate_limits",
                                                     "thingsboard_version", "x509_ca", "x509_ca_file", "x509_cn_regex", "allow_create"])
            guard let name = try reader.string(table, at + "name") else { throw reader.problem(at + "name", "is required") }
            let strategyName = try reader.string(table, at + "strategy") ?? ProvisionStrategy.allowCreateNewDevices.rawValue
            guard let strategy = ProvisionStrategy(rawValue: strategyName) else {
                throw reader.problem(at + "strategy", "\"\(strategyName)\" is not one of \(ProvisionStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var rateLimits: RateLimits? = nil
            if let entry = reader.entry(table, at + "rate_limits") {
                guard let limits = entry.value.table else {
                    throw reader.problem(at + "rate_limits", "must be a table ([profiles.rate_limits] or { messages = \"20:1\" })",
                                         at: entry.keyPosition)
                }
                rateLimits = try reader.rateLimits(limits, at + "rate_limits.")
            }
            var version: ThingsBoardVersion? = nil
            if let text = try reader.string(table, at + "thingsboard_version") {
                do {
                    version = try ThingsBoardVersion(text)
                } catch {
                    throw reader.problem(at + "thingsboard_version", error.description,
                                         at: reader.entry(table, "thingsboard_version")?.keyPosition)
                }
            }
            let x509 = try reader.x509(table, at, strategy: strategy)
            configuration.profiles.append(DeviceProfile(
                name: name, provisionKey: try reader.string(table, at + "provision_key"),
                provisionSecret: try reader.string(table, at + "provision_secret"), strategy: strategy,
                rateLimits: rateLimits, thingsboardVersion: version, x509: x509))
        }
        for (index, table) in try reader.tables(root, "devices").enumerated() {
            let at = "devices[\(index)]."
            try reader.checkKeys(table, at, allowed: ["name", "profile", "credentials_type", "token", "client_id", "username",
                                                     "password", "certificate", "gateway", "provisioned"])
            guard let name = try reader.string(table, at + "name") else { throw reader.problem(at + "name", "is required") }
            guard let profile = try reader.string(table, at + "profile") else { throw reader.problem(at + "profile", "is required") }
            let typeName = try reader.string(table, at + "credentials_type") ?? CredentialsType.accessToken.rawValue
            let credentials: DeviceCredentials
            switch CredentialsType(rawValue: typeName) {
            case .accessToken:
                guard let token = try reader.string(table, at + "token"), !token.isEmpty else {
                    throw reader.problem(at + "token", "is required for ACCESS_TOKEN")
                }
                credentials = .accessToken(token)
            case .mqttBasic:
                let basic = MQTTBasicCredentials(clientID: try reader.string(table, at + "client_id"),
                                                 userName: try reader.string(table, at + "username"),
                                                 password: try reader.string(table, at + "password"))
                if let problem = basic.validationProblem { throw reader.problem(at + "credentials_type", "MQTT_BASIC: \(problem)") }
                credentials = .mqttBasic(basic)
            case .x509Certificate:
                guard let certificate = try reader.string(table, at + "certificate"), !certificate.isEmpty else {
                    throw reader.problem(at + "certificate", "is required for X509_CERTIFICATE")
                }
                credentials = .x509Certificate(certificate)
            default:
                throw reader.problem(at + "credentials_type", "\"\(typeName)\" is not one of ACCESS_TOKEN, MQTT_BASIC, X509_CERTIFICATE")
            }
            let provisioned = try reader.bool(table, at + "provisioned") ?? false
            configuration.devices.append(SimDevice(
                name: name, profile: profile, credentials: credentials, provisionState: provisioned ? "provisioned" : nil,
                gateway: try reader.bool(table, at + "gateway") ?? false, createdTime: 0))
        }
        let names = configuration.profiles.map(\.name)
        for (index, device) in configuration.devices.enumerated() where !names.contains(device.profile) {
            throw reader.problem("devices[\(index)].profile", "names profile \"\(device.profile)\", which is not defined in [[profiles]]")
        }
        try self.parseOta(root, reader, into: &configuration)
    }

    static func parseOta(_ root: TOMLTable, _ reader: Reader, into configuration: inout SimulatorConfiguration) throws(SimulatorError) {
        if let ota = try reader.table(root, "ota") {
            try reader.checkKeys(ota, "ota.", allowed: ["max_package_size", "max_packages"])
            if let size = try reader.int(ota, "ota.max_package_size") {
                guard size > 0 && size <= 1 << 30 else { throw reader.problem("ota.max_package_size", "must be between 1 and 1073741824 bytes") }
                configuration.otaLimits.maxPackageSize = size
                configuration.otaLimits.maxTotalBytes = max(configuration.otaLimits.maxTotalBytes, size)
            }
            if let count = try reader.int(ota, "ota.max_packages") {
                guard count > 0 && count <= 10_000 else { throw reader.problem("ota.max_packages", "must be between 1 and 10000") }
                configuration.otaLimits.maxPackages = count
            }
        }
        for (index, table) in try reader.tables(root, "ota_packages").enumerated() {
            let at = "ota_packages[\(index)]."
            try reader.checkKeys(table, at, allowed: ["title", "version", "type", "file", "url", "checksum_algorithm", "checksum",
                                                     "tag", "profiles", "devices"])
            guard let title = try reader.string(table, at + "title"), !title.isEmpty else { throw reader.problem(at + "title", "is required") }
            guard let version = try reader.string(table, at + "version"), !version.isEmpty else {
                throw reader.problem(at + "version", "is required")
            }
            let typeName = try reader.string(table, at + "type") ?? OtaPackageType.firmware.rawValue
            guard let type = OtaPackageType(rawValue: typeName) else {
                throw reader.problem(at + "type", "\"\(typeName)\" is not one of FIRMWARE, SOFTWARE",
                                     at: reader.entry(table, at + "type")?.keyPosition)
            }
            var upload = OtaUpload(type: type, title: title, version: version)
            upload.package.tag = try reader.string(table, at + "tag")
            upload.package.url = try reader.string(table, at + "url")
            upload.package.checksum = try reader.string(table, at + "checksum")
            if let name = try reader.string(table, at + "checksum_algorithm") {
                guard let algorithm = ChecksumAlgorithm(name: name) else {
                    throw reader.problem(at + "checksum_algorithm",
                                         "\"\(name)\" is not one of \(ChecksumAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))",
                                         at: reader.entry(table, at + "checksum_algorithm")?.keyPosition)
                }
                upload.package.checksumAlgorithm = algorithm
            }
            switch (try reader.string(table, at + "file"), upload.package.url) {
            case (let file?, nil):
                let attributes = try? FileManager.default.attributesOfItem(atPath: file)
                guard let size = (attributes?[.size] as? NSNumber)?.intValue else {
                    throw reader.problem(at + "file", "\(file) cannot be read (a path relative to the folder tb-sim runs in)")
                }
                guard size <= configuration.otaLimits.maxPackageSize else {
                    throw reader.problem(at + "file", "\(file) has \(size) bytes, over ota.max_package_size (\(configuration.otaLimits.maxPackageSize))")
                }
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw reader.problem(at + "file", "\(file) cannot be read")
                }
                upload.package.data = [UInt8](data)
            case (nil, .some):
                break
            default:
                throw reader.problem(at + "file", "give either a file or a url")
            }
            configuration.otaPackages.append(OtaPackageSeed(
                upload: upload, profiles: try reader.strings(table, at + "profiles"), devices: try reader.strings(table, at + "devices")))
        }
    }

    /// Typed access with `FILE:LINE:COLUMN: key: message` errors (`FILE: key: message` for a missing key).
    struct Reader {
        let path: String

        func problem(_ key: String, _ message: String, at position: TOMLPosition? = nil) -> SimulatorError {
            SimulatorError("\(self.path):" + (position.map { "\($0):" } ?? "") + " \(key): \(message)")
        }

        func last(_ key: String) -> String { String(key.split(separator: ".").last ?? Substring(key)) }

        func checkKeys(_ table: TOMLTable, _ prefix: String, allowed: Set<String>) throws(SimulatorError) {
            for entry in table.entries where !allowed.contains(entry.key) {
                throw self.problem(
                    prefix + entry.key, "unknown key (known: \(allowed.sorted().joined(separator: ", ")))",
                    at: entry.keyPosition)
            }
        }

        func entry(_ table: TOMLTable, _ key: String) -> TOMLTable.Entry? { table.entry(self.last(key)) }

        /// `messages`, `telemetry_messages`, `telemetry_data_points`: ThingsBoard's `"cap:seconds,…"` texts.
        func rateLimits(_ table: TOMLTable, _ prefix: String) throws(SimulatorError) -> RateLimits {
            try self.checkKeys(table, prefix, allowed: ["messages", "telemetry_messages", "telemetry_data_points"])
            func limit(_ key: String) throws(SimulatorError) -> RateLimit? {
                guard let text = try self.string(table, prefix + key) else { return nil }
                do {
                    return try RateLimit(text)
                } catch {
                    throw self.problem(prefix + key, error.description, at: self.entry(table, key)?.keyPosition)
                }
            }
            return RateLimits(messages: try limit("messages"), telemetryMessages: try limit("telemetry_messages"),
                              telemetryDataPoints: try limit("telemetry_data_points"))
        }

        /// An X509_CERTIFICATE_CHAIN profile's `x509_ca` (PEM) or `x509_ca_file`, `x509_cn_regex` and `allow_create`;
        /// nil for other strategies (which may not set them).
        func x509(_ table: TOMLTable, _ at: String, strategy: ProvisionStrategy) throws(SimulatorError) -> X509ChainSettings? {
            let keys = ["x509_ca", "x509_ca_file", "x509_cn_regex", "allow_create"]
            guard strategy == .x509CertificateChain else {
                if let key = keys.first(where: { table.entry($0) != nil }) {
                    throw self.problem(at + key, "applies only to strategy = \"X509_CERTIFICATE_CHAIN\"", at: table.entry(key)?.keyPosition)
                }
                return nil
            }
            var ca = try self.string(table, at + "x509_ca")
            if let file = try self.string(table, at + "x509_ca_file") {
                guard ca == nil else { throw self.problem(at + "x509_ca_file", "set x509_ca or x509_ca_file, not both") }
                do {
                    ca = try String(contentsOfFile: file, encoding: .utf8)
                } catch {
                    throw self.problem(at + "x509_ca_file", "cannot read \"\(file)\" (\(error.localizedDescription)); it must hold the CA certificate (PEM) that signs the devices' chains")
                }
            }
            guard let ca else {
                throw self.problem(at + "x509_ca_file", "missing: an X509_CERTIFICATE_CHAIN profile needs its CA certificate (x509_ca_file = \"ca.pem\" or x509_ca = \"-----BEGIN CERTIFICATE-----…\")")
            }
            let settings = X509ChainSettings(caCertificate: ca, cnRegex: try self.string(table, at + "x509_cn_regex") ?? "(.*)",
                                             allowCreate: try self.bool(table, at + "allow_create") ?? false)
            do {
                try settings.validate()
            } catch {
                throw self.problem(at + "x509", error.description)
            }
            return settings
        }

        func string(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> String? {
            guard let entry = self.entry(table, key) else { return nil }
            guard let s = entry.value.string else { throw self.problem(key, "must be a string", at: entry.keyPosition) }
            return s
        }

        func strings(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> [String] {
            guard let entry = self.entry(table, key) else { return [] }
            guard let list = entry.value.array?.compactMap(\.string), list.count == entry.value.array?.count else {
                throw self.problem(key, "must be an array of strings", at: entry.keyPosition)
            }
            return list
        }

        func int(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> Int? {
            guard let entry = self.entry(table, key) else { return nil }
            guard let i = entry.value.integer.flatMap({ Int(exactly: $0) }) else {
                throw self.problem(key, "must be an integer", at: entry.keyPosition)
            }
            return i
        }

        func bool(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> Bool? {
            guard let entry = self.entry(table, key) else { return nil }
            guard let b = entry.value.boolean else { throw self.problem(key, "must be true or false", at: entry.keyPosition) }
            return b
        }

        func port(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> Int? {
            guard let port = try self.int(table, key) else { return nil }
            guard (0...65535).contains(port) else {
                throw self.problem(key, "must be between 0 and 65535 (0 picks a free port)", at: self.entry(table, key)?.keyPosition)
            }
            return port
        }

        func duration(_ table: TOMLTable, _ key: String) throws(SimulatorError) -> Duration? {
            guard let entry = self.entry(table, key) else { return nil }
            let value = entry.value
            if let i = value.integer, i >= 0, i <= Int64(Int32.max) { return .seconds(i) }
            if let d = value.float, d >= 0, d <= Double(Int32.max) { return .milliseconds(Int64(d * 1000)) }
            if let s = value.string, let d = parseDuration(s) { return d }
            throw self.problem(
                key, "must be seconds (a number) or text such as \"500ms\", \"60s\", \"10m\"", at: entry.keyPosition)
        }

        func table(_ root: TOMLTable, _ key: String) throws(SimulatorError) -> TOMLTable? {
            guard let entry = root.entry(key) else { return nil }
            guard let t = entry.value.table else { throw self.problem(key, "must be a table ([\(key)])", at: entry.keyPosition) }
            return t
        }

        func tables(_ root: TOMLTable, _ key: String) throws(SimulatorError) -> [TOMLTable] {
            guard let entry = root.entry(key) else { return [] }
            guard let array = entry.value.array else {
                throw self.problem(key, "must be an array of tables ([[\(key)]])", at: entry.keyPosition)
            }
            var result: [TOMLTable] = []
            for (index, element) in array.enumerated() {
                guard let t = element.table else { throw self.problem("\(key)[\(index)]", "must be a table", at: element.position) }
                result.append(t)
            }
            return result
        }
    }
}

/// `"500ms"`, `"60s"`, `"10m"`, `"1h"` or a plain number of seconds (at most about 68 years: nil beyond).
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    var number = Substring(trimmed)
    var factor = 1.0
    for (suffix, unit) in units where trimmed.hasSuffix(suffix) {
        number = Substring(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces))
        factor = unit
        break
    }
    guard let value = Double(number), value >= 0, value.isFinite else { return nil }
    let milliseconds = (value * factor * 1000).rounded()
    // Int64(_:) traps on a value it cannot hold.
    guard milliseconds <= Double(Int32.max) * 1000 else { return nil }
    return .milliseconds(Int64(milliseconds))
}
