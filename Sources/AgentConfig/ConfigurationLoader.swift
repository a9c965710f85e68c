import AgentCore
import AgentHost

#if canImport(Glibc)
import Glibc
#endif
import TBTOML
import TextSearch

/// Reads `config.toml` into an `AgentConfiguration`, collecting every problem (README, "Configuration").
///
/// Relative paths in the file (`sysroot`, `device_secret_file`, `simulated_dir`, TLS files…) are relative to the
/// folder of the configuration file. Board profiles named by `[device] board` are looked up on
/// `boardSearchPath(configurationPath:)`.
public enum ConfigurationLoader {
    /// A configuration (or board profile) larger than this is refused: real ones are a few kilobytes.
    static let maxBytes = 1 << 20

    /// Reads and validates the configuration at `path`. `[server]` and `[provisioning]` are required.
    public static func load(path: String) throws(ConfigurationFileError) -> AgentConfiguration {
        try self.parse(try self.readConfiguration(path), path: path)
    }

    /// Validates configuration `text` as if read from `path` (which positions messages and anchors relative paths).
    public static func parse(_ text: String, path: String) throws(ConfigurationFileError) -> AgentConfiguration {
        let parsed = ConfigurationParser(text: text, path: path, requireConnection: true).run()
        guard parsed.problems.isEmpty, let server = parsed.server, let provisioning = parsed.provisioning else {
            throw ConfigurationFileError(problems: parsed.problems)
        }
        var configuration = AgentConfiguration(
            server: server, provisioning: provisioning, device: parsed.device, telemetry: parsed.telemetry,
            gpio: parsed.gpio, sensors: parsed.sensors, button: parsed.button, led: parsed.led,
            boardProfile: parsed.boardProfile)
        configuration.spool = parsed.spool
        configuration.claiming = parsed.claiming
        configuration.ota = parsed.ota
        return configuration
    }

    /// Reads `[device]` from the configuration at `path` for commands that need only the hardware identity
    /// (`tb-agent identity`): the whole file is checked, but `[server]` and `[provisioning]` may be absent.
    public static func loadDeviceSettings(path: String) throws(ConfigurationFileError) -> DeviceSettings {
        try self.parseDeviceSettings(try self.readConfiguration(path), path: path)
    }

    /// `loadDeviceSettings(path:)` on text.
    public static func parseDeviceSettings(_ text: String, path: String) throws(ConfigurationFileError) -> DeviceSettings {
        let parsed = ConfigurationParser(text: text, path: path, requireConnection: false).run()
        guard parsed.problems.isEmpty else { throw ConfigurationFileError(problems: parsed.problems) }
        return parsed.device
    }

    /// Where board profiles are looked for, in order: `$TB_AGENT_BOARDS_DIR`, `/etc/tb-agent/boards`,
    /// `/usr/share/tb-agent/boards`, then a `board/` folder beside the configuration file or in any folder above it
    /// (a checkout of this repository).
    public static func boardSearchPath(configurationPath: String) -> [String] {
        var dirs: [String] = []
        if let env = HostProcess.environment()["TB_AGENT_BOARDS_DIR"], !env.isEmpty {
            dirs += env.split(separator: ":").map(String.init)
        }
        dirs += ["/etc/tb-agent/boards", "/usr/share/tb-agent/boards"]
        var folder = HostProcess.parent(of: self.absolute(configurationPath))
        while folder != "/" {
            dirs.append(folder + "/board")
            if folder.hasSuffix("/board") { dirs.append(folder) }
            let parent = HostProcess.parent(of: folder)
            if parent == folder { break }
            folder = parent
        }
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    static func readConfiguration(_ path: String) throws(ConfigurationFileError) -> String {
        switch FileText.read(path) {
        case .success(let text):
            return text
        case .failure(let reason):
            throw ConfigurationFileError(problems: [
                ConfigurationProblem(
                    file: path, line: nil, column: nil, keyPath: "",
                    message: "cannot read the configuration (\(reason)); create it with `tb-agent setup` or pass "
                        + "--config FILE")
            ])
        }
    }

    /// `path` made absolute against the current directory.
    static func absolute(_ path: String) -> String { HostProcess.absolutePath(path) }
}

/// Reading small text files, with a short reason on failure.
enum FileText {
    static func read(_ path: String) -> Result<String, FileReadFailure> {
        if case .failure(let failure) = Self.readable(path) { return .failure(failure) }
        // One byte past the limit, so that the reader refuses a file that is too large instead of a cut one.
        let data: [UInt8]
        switch POSIXFile.read(path, limit: ConfigurationLoader.maxBytes + 1) {
        case .success(let bytes): data = bytes
        case .failure(let error): return .failure(FileReadFailure(error.code == EACCES ? "permission denied" : "\(error)"))
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            return .failure(FileReadFailure("not UTF-8 text"))
        }
        return .success(text)
    }

    struct FileReadFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// One run of validation over one file.
final class ConfigurationParser {
    let text: String
    let path: String
    let requireConnection: Bool
    let directory: String
    let problems: ProblemCollector

    var server: ServerSettings?
    var provisioning: ProvisioningSettings?
    var device = DeviceSettings()
    var telemetry = TelemetrySettings()
    var spool = SpoolSettings()
    var gpio = GPIOSettings()
    var sensors: [SensorSettings] = []
    /// The key path of each entry of `sensors` (entries with problems are left out, so indices can differ).
    var sensorPaths: [KeyPath] = []
    var button: ButtonSettings?
    var led: LEDSettings?
    var boardProfile: BoardProfile?
    var claiming: ClaimingSettings?
    var ota = OTASettings()

    static let topLevelKeys = [
        "server", "provisioning", "device", "telemetry", "spool", "gpio", "sensors", "button", "led", "claiming", "ota",
    ]

    init(text: String, path: String, requireConnection: Bool) {
        self.text = text
        self.path = path
        self.requireConnection = requireConnection
        self.directory = HostProcess.parent(of: ConfigurationLoader.absolute(path))
        self.problems = ProblemCollector(file: path)
    }

    struct Result {
        var problems: [ConfigurationProblem]
        var server: ServerSettings?
        var provisioning: ProvisioningSettings?
        var device: DeviceSettings
        var telemetry: TelemetrySettings
        var spool: SpoolSettings
        var gpio: GPIOSettings
        var sensors: [SensorSettings]
        var button: ButtonSettings?
        var led: LEDSettings?
        var boardProfile: BoardProfile?
        var claiming: ClaimingSettings?
        var ota: OTASettings
    }

    func run() -> Result {
        self.validate()
        // In file order, so that a person can fix them top to bottom; problems without a place come last.
        let ordered = self.problems.problems.enumerated().sorted { a, b in
            let ka = (a.element.line ?? Int.max, a.element.column ?? Int.max, a.offset)
            let kb = (b.element.line ?? Int.max, b.element.column ?? Int.max, b.offset)
            return ka < kb
        }.map(\.element)
        return Result(
            problems: ordered, server: self.server, provisioning: self.provisioning, device: self.device,
            telemetry: self.telemetry, spool: self.spool, gpio: self.gpio, sensors: self.sensors, button: self.button, led: self.led,
            boardProfile: self.boardProfile, claiming: self.claiming, ota: self.ota)
    }

    func validate() {
        let root: TOMLTable
        do {
            root = try TOMLParser.parse(self.text, maxBytes: ConfigurationLoader.maxBytes)
        } catch {
            self.problems.reportSyntaxError(error)
            return
        }
        self.problems.root = root
        guard case .table(let top) = TOMLNode.from(root) else { return }
        let reader = TableReader(path: KeyPath(), table: top, problems: self.problems)
        for key in top.keys.sorted() where !Self.topLevelKeys.contains(key) {
            let hint = Suggestion.didYouMean(key, Self.topLevelKeys)
            reader.report(key, "unknown table or key (known tables: \(Self.topLevelKeys.joined(separator: ", ")))\(hint)")
        }

        self.readDevice(reader.table("device", expected: "a table [device]"))
        if let server = reader.table("server", expected: "a table [server]") {
            self.readServer(server)
        } else if self.requireConnection && !reader.has("server") {
            self.problems.report(
                KeyPath(keys: "server"),
                "missing table [server]; add it with host = \"thingsboard.example.com\" (and port = 1883)")
        }
        if let provisioning = reader.table("provisioning", expected: "a table [provisioning]") {
            self.readProvisioning(provisioning)
        } else if self.requireConnection && !reader.has("provisioning") {
            self.problems.report(
                KeyPath(keys: "provisioning"),
                "missing table [provisioning]; add it with device_key = \"…\" and device_secret_file = \"…\" "
                    + "(or device_secret), from the ThingsBoard device profile")
        }
        if let telemetry = reader.table("telemetry", expected: "a table [telemetry]") { self.readTelemetry(telemetry) }
        if let spool = reader.table("spool", expected: "a table [spool]") { self.readSpool(spool) }
        if let gpio = reader.table("gpio", expected: "a table [gpio]") { self.readGPIO(gpio) }
        self.readSensors(reader)
        if let button = reader.table("button", expected: "a table [button]") { self.readButton(button) }
        if let led = reader.table("led", expected: "a table [led]") { self.readLED(led) }
        if let claiming = reader.table("claiming", expected: "a table [claiming]") { self.readClaiming(claiming) }
        if let ota = reader.table("ota", expected: "a table [ota]") { self.readOTA(ota) }
        self.checkLinesUsedOnce()
        if let server = self.server, let provisioning = self.provisioning {
            self.checkCredentials(server, provisioning, reader)
        }
    }

    /// `value` made absolute against the configuration file's folder.
    func resolve(_ value: String) -> String {
        if value.hasPrefix("/") { return value }
        return HostProcess.normalize(self.directory + "/" + value)
    }

    /// The resolved path of a file key, reporting when the file cannot be read.
    func readableFile(_ reader: TableReader, _ key: String, what: String) -> String? {
        guard let value = reader.nonEmptyString(key, expected: "the path of \(what)") else { return nil }
        let resolved = self.resolve(value)
        if case .failure(let reason) = FileText.readable(resolved) {
            reader.report(key, "cannot read \(what) \"\(resolved)\" (\(reason)); fix the path or the file's permissions")
        }
        return resolved
    }

    // MARK: sections

    func readServer(_ r: TableReader) {
        r.rejectUnknownKeys(["host", "port", "keepalive", "max_backoff", "rate_limits", "tls"], section: "[server]")
        let host = r.requiredString("host", expected: "the ThingsBoard host name, like host = \"thingsboard.example.com\"")
        if let host {
            if host.includes("://") {
                r.report("host", "\"\(host)\" includes a scheme; write the host name only, like \"thingsboard.example.com\"")
            } else if host.contains(where: \.isWhitespace) {
                r.report("host", "\"\(host)\" contains spaces; expected a host name or IP address")
            }
        }
        let port = r.integer("port", range: 1...65535, expected: "a port number from 1 to 65535 (1883, or 8883 with TLS)")
        let keepalive = r.duration("keepalive", range: .seconds(1) ... .seconds(65535))
        let maxBackoff = r.duration("max_backoff", range: .seconds(1) ... .seconds(3600))
        var tls: TLSSettings? = nil
        if let t = r.table("tls", expected: "a table [server.tls]") {
            t.rejectUnknownKeys(["ca_file", "cert_file", "key_file", "verify_hostname"], section: "[server.tls]")
            let ca = t.has("ca_file") ? self.readableFile(t, "ca_file", what: "the CA certificate file") : nil
            let cert = t.has("cert_file") ? self.readableFile(t, "cert_file", what: "the client certificate file") : nil
            let key = t.has("key_file") ? self.readableFile(t, "key_file", what: "the client private key file") : nil
            if t.has("cert_file") != t.has("key_file") {
                let missing = t.has("cert_file") ? "key_file" : "cert_file"
                t.report(missing, "missing; cert_file and key_file go together (the client certificate and its key)")
            }
            tls = TLSSettings(caFile: ca, certFile: cert, keyFile: key, verifyHostname: t.bool("verify_hostname") ?? true)
        }
        let rateLimits = self.readRateLimits(r)
        guard let host else { return }
        self.server = ServerSettings(
            host: host, port: port, tls: tls, keepalive: keepalive ?? .seconds(60), maxBackoff: maxBackoff ?? .seconds(300),
            rateLimits: rateLimits ?? .auto)
    }

    /// `[server] rate_limits`: `"auto"`, or a table of limits for servers that do not answer getSessionLimits.
    func readRateLimits(_ r: TableReader) -> RateLimitSettings? {
        let example = "[server.rate_limits] with messages = \"10:1,300:60\", telemetry_messages = \"10:1,300:60\", "
            + "telemetry_data_points = \"10:1,300:60\" (the tenant profile's transport limits)"
        switch r.table["rate_limits"] {
        case nil:
            return nil
        case .string(let text)?:
            if text == "auto" { return .auto }
            let hint = (try? RateLimit.parse(text)) != nil
                ? "; a limit string belongs to one of the limits: write \(example)" : "; or write \(example)"
            r.report("rate_limits", "\"\(text)\" is not valid: expected \"auto\" (ask the server)\(hint)")
            return nil
        case .table?:
            guard let t = r.table("rate_limits", expected: "a table") else { return nil }
            let keys = ["messages", "telemetry_messages", "telemetry_data_points", "max_payload_size", "max_inflight_messages"]
            t.rejectUnknownKeys(keys, section: "[server.rate_limits]")
            func limit(_ key: String) -> RateLimit? {
                guard let text = t.string(key, expected: "a ThingsBoard rate limit like \"10:1,300:60\"") else { return nil }
                do {
                    return try RateLimit.parse(text)
                } catch {
                    t.report(key, error.description)
                    return nil
                }
            }
            let limits = SessionLimits(
                maxPayloadSize: t.byteSize("max_payload_size", range: SessionLimits.minPayloadSize...SessionLimits.maxPayloadSizeBound),
                maxInflightMessages: t.integer(
                    "max_inflight_messages", range: 1...SessionLimits.maxInflightBound,
                    expected: "a number of messages from 1 to \(SessionLimits.maxInflightBound)"),
                messages: limit("messages"), telemetryMessages: limit("telemetry_messages"),
                telemetryDataPoints: limit("telemetry_data_points"))
            return .explicit(limits)
        case let other?:
            r.report("rate_limits", "expected \"auto\" or \(example), found \(other.found)")
            return nil
        }
    }

    func readProvisioning(_ r: TableReader) {
        let keys = [
            "method", "device_key", "device_secret", "device_secret_file", "credentials_type", "token", "client_id",
            "username", "password", "cert_file", "timeout", "chain_file", "key_file", "cn_regex",
        ]
        r.rejectUnknownKeys(keys, section: "[provisioning]")
        let method = r.has("method") ? r.choice("method", ProvisioningMethod.self) : .deviceKey
        guard let method else { return }  // reported; the other keys depend on the method
        let chainKeys = ["chain_file", "key_file", "cn_regex"]
        if method == .x509Chain {
            self.readX509Chain(r, requestKeys: keys.filter { !chainKeys.contains($0) && $0 != "method" && $0 != "timeout" })
            return
        }
        for key in chainKeys where r.has(key) {
            r.report(key, "applies only to method = \"x509-chain\"; set method = \"x509-chain\" or remove it")
        }
        let deviceKey = r.requiredString(
            "device_key", expected: "the provision device key from the ThingsBoard device profile")
        var secret: Secret? = nil
        var secretFile: String? = nil
        switch (r.has("device_secret"), r.has("device_secret_file")) {
        case (true, true):
            r.report("device_secret_file", "set device_secret or device_secret_file, not both")
        case (false, false):
            r.report(
                "device_secret",
                "missing; set device_secret_file = \"/etc/tb-agent/secret\" (a file holding the provision device "
                    + "secret, mode 0600) or device_secret = \"…\"")
        case (true, false):
            if let value = r.string("device_secret", expected: "the provision device secret (a string)") {
                if value.isEmpty {
                    r.report("device_secret", "is empty; expected the provision device secret from the device profile")
                } else {
                    secret = Secret(value)
                }
            }
        case (false, true):
            if let value = r.nonEmptyString("device_secret_file", expected: "the path of a file holding the secret") {
                let file = self.resolve(value)
                secretFile = file
                switch FileText.read(file) {
                case .failure(let reason):
                    r.report(
                        "device_secret_file",
                        "cannot read \"\(file)\" (\(reason)); write the provision device secret into it "
                            + "(`install -m 0640 -g tb-agent /dev/null \(file)`, then edit it) or set device_secret instead")
                case .success(let content):
                    let value = Secret.fromText(content)
                    if value.isEmpty {
                        r.report(
                            "device_secret_file",
                            "\"\(file)\" is empty; write the provision device secret into it")
                    } else {
                        secret = value
                    }
                }
            }
        }
        let type = r.choice("credentials_type", CredentialsType.self)
        let tokenValue = r.string("token", expected: "the access token to ask for (a string)")
        let clientId = r.nonEmptyString("client_id", expected: "the MQTT client id (a string)")
        let username = r.nonEmptyString("username", expected: "the MQTT user name (a string)")
        let password = r.nonEmptyString("password", expected: "the MQTT password (a string)")
        let certFile = r.has("cert_file")
            ? self.readableFile(r, "cert_file", what: "the device certificate (PEM)") : nil
        let timeout = r.duration("timeout", range: .seconds(1) ... .seconds(600))

        // Each credentials key belongs to one credentials type.
        let owners: [(String, CredentialsType)] = [
            ("token", .accessToken), ("client_id", .mqttBasic), ("username", .mqttBasic), ("password", .mqttBasic),
            ("cert_file", .x509Certificate),
        ]
        if r.has("credentials_type") && type == nil {
            // Already reported; do not pile up follow-on problems.
        } else {
            for (key, owner) in owners where r.has(key) && (type ?? .accessToken) != owner {
                r.report(
                    key, "applies only to credentials_type = \"\(owner.rawValue)\"; set credentials_type or remove it")
            }
        }
        switch type {
        case .mqttBasic:
            if clientId == nil && username == nil && !r.has("client_id") && !r.has("username") {
                r.report(
                    "credentials_type",
                    "MQTT_BASIC needs client_id, or username and password (or all three), in [provisioning]")
            }
            if r.has("password") && !r.has("username") {
                r.report("username", "missing; ThingsBoard refuses MQTT_BASIC credentials with a password but no username")
            }
        case .x509Certificate:
            if !r.has("cert_file") {
                r.report("cert_file", "missing; X509_CERTIFICATE needs cert_file, the device certificate in PEM form")
            }
        default: break
        }
        guard let deviceKey, let secret else { return }
        self.provisioning = ProvisioningSettings(
            deviceKey: deviceKey, deviceSecret: secret, deviceSecretFile: secretFile, credentialsType: type,
            token: tokenValue.map(Secret.init), clientId: clientId, username: username,
            password: password.map(Secret.init), certFile: certFile, timeout: timeout ?? .seconds(30))
    }

    /// `method = "x509-chain"`: `chain_file`, `key_file` (mode 0600 or stricter, owned by the agent's user),
    /// `cn_regex`. The certificates themselves (key match, expiry, CN) are checked by tb-agent with OpenSSL.
    func readX509Chain(_ r: TableReader, requestKeys: [String]) {
        for key in requestKeys where r.has(key) {
            r.report(key, "applies only to provisioning by request (method = \"device-key\"); method = \"x509-chain\" sends no provision request: remove it")
        }
        let chainFile = r.has("chain_file")
            ? self.readableFile(r, "chain_file", what: "the certificate chain (PEM: the device's certificate first, then the intermediates)")
            : nil
        if !r.has("chain_file") {
            r.report("chain_file", "missing; method = \"x509-chain\" needs chain_file, the device's certificate and its intermediates in PEM form (leaf first)")
        }
        var keyFile: String? = nil
        if r.has("key_file") {
            keyFile = self.readableFile(r, "key_file", what: "the device's private key (PEM)")
            if let keyFile, let problem = Self.privateKeyFileProblem(keyFile) { r.report("key_file", problem) }
        } else {
            r.report("key_file", "missing; method = \"x509-chain\" needs key_file, the private key of the device's certificate (PEM, mode 0600)")
        }
        var pattern: CommonNamePattern? = nil
        if r.has("cn_regex") {
            if let text = r.nonEmptyString("cn_regex", expected: "the device profile's CN regular expression, such as \"(.*)\"") {
                do {
                    pattern = try CommonNamePattern(parsing: text)
                } catch {
                    r.report("cn_regex", error.description)
                }
            }
        } else {
            pattern = try? CommonNamePattern(parsing: "(.*)")
        }
        let timeout = r.duration("timeout", range: .seconds(1) ... .seconds(600))
        guard let chainFile, let keyFile, let pattern else { return }
        self.provisioning = ProvisioningSettings(
            deviceKey: "", deviceSecret: Secret(""), timeout: timeout ?? .seconds(30),
            x509Chain: X509ChainSettings(chainFile: chainFile, keyFile: keyFile, cnPattern: pattern))
    }

    /// Why a private key file may not be used: readable or writable by anyone but its owner, or owned by another
    /// user than the agent's (root may use any). Nil when it is fine or cannot be examined (reported elsewhere).
    static func privateKeyFileProblem(_ path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        if status.st_mode & 0o077 != 0 {
            return "\"\(path)\" holds the device's private key but its mode is \(String(status.st_mode & 0o7777, radix: 8)), which lets other users read or change it: `chmod 600 \(path)`"
        }
        let user = geteuid()
        if user != 0 && status.st_uid != user {
            return "\"\(path)\" holds the device's private key but belongs to another user (uid \(status.st_uid)), not to the agent's (uid \(user)): `chown \(user) \(path)` and `chmod 600 \(path)`"
        }
        return nil
    }

    func readOTA(_ r: TableReader) {
        r.rejectUnknownKeys(["enabled", "title", "chunk_size", "confirm_after", "window", "restart_command", "backup_directory", "software"], section: "[ota]")
        if let software = r.table("software", expected: "a table [ota.software]") {
            software.rejectUnknownKeys(["command", "timeout"], section: "[ota.software]")
            if let command = Self.command(software, "command", example: "[\"/usr/local/bin/install-app\"]") {
                self.ota.softwareCommand = command
            } else if !software.has("command") {
                software.report("command", "missing; set command = [\"/usr/local/bin/install-app\"] (the package's path is appended as the last argument), or remove [ota.software]")
            }
            if let timeout = software.duration("timeout", range: .seconds(1) ... .seconds(86400)) { self.ota.softwareTimeout = timeout }
        }
        if let confirm = r.duration("confirm_after", range: .seconds(1) ... .seconds(3600)) { self.ota.confirmAfter = confirm }
        if let window = r.duration("window", range: .seconds(2) ... .seconds(86400)) {
            if window > self.ota.confirmAfter {
                self.ota.window = window
            } else {
                r.report("window", "\(DurationText.format(window)) is not longer than confirm_after (\(DurationText.format(self.ota.confirmAfter))): a new version could never confirm in time and every update would be rolled back; make the window longer")
            }
        } else if !r.has("window"), self.ota.window <= self.ota.confirmAfter {
            r.report("confirm_after", "\(DurationText.format(self.ota.confirmAfter)) is not shorter than the window (\(DurationText.format(self.ota.window))): set window longer than confirm_after")
        }
        if let words = Self.command(r, "restart_command", example: "[\"systemctl\", \"restart\", \"tb-agent.service\"]") {
            self.ota.restartCommand = words
        }
        if let directory = r.nonEmptyString("backup_directory", expected: "an absolute path (a directory of root's)") {
            if directory.hasPrefix("/") {
                self.ota.backupDirectory = directory
            } else {
                r.report("backup_directory", "\"\(directory)\" is not absolute; give a path starting with /")
            }
        }
        if let enabled = r.bool("enabled") { self.ota.enabled = enabled }
        if let title = r.nonEmptyString("title", expected: "the OTA package title this agent runs (a string, like \"tb-agent\")") {
            self.ota.title = title
        }
        let range = OTASettings.chunkSizeRange
        if r.has("chunk_size"), let size = r.byteSize("chunk_size", range: 1...Int.max) {
            if range.contains(size) {
                self.ota.chunkSize = size
            } else {
                r.report(
                    "chunk_size",
                    "\(size) bytes is out of range; expected \(range.lowerBound >> 10)KiB to \(range.upperBound >> 10)KiB: ThingsBoard closes the session on a chunk request above its 64 KiB payload limit, and the agent drops larger incoming messages")
            }
        }
    }

    /// A command as an array of strings, not empty, none of them empty; reported otherwise.
    static func command(_ r: TableReader, _ key: String, example: String) -> [String]? {
        guard let node = r.table[key] else { return nil }
        var words: [String]? = nil
        if case .array(let items) = node {
            words = []
            for item in items {
                guard case .string(let word) = item, !word.isEmpty else { words = nil; break }
                words?.append(word)
            }
        }
        guard let words, !words.isEmpty else {
            r.report(key, "expected a command as an array of strings, like \(example), found \(node.found)")
            return nil
        }
        return words
    }

    func readClaiming(_ r: TableReader) {
        r.rejectUnknownKeys(["secret", "secret_file", "duration"], section: "[claiming]")
        var secret: Secret? = nil
        var secretFile: String? = nil
        switch (r.has("secret"), r.has("secret_file")) {
        case (true, true):
            r.report("secret_file", "set secret or secret_file, not both")
        case (false, false):
            r.report(
                "secret",
                "missing; set secret_file = \"/etc/tb-agent/claim-secret\" (a file holding the claiming secret, mode 0600) "
                    + "or secret = \"…\", the secret a person types with the device name to claim it")
        case (true, false):
            if let value = r.string("secret", expected: "the claiming secret (a string)") {
                if value.isEmpty {
                    r.report("secret", "is empty; anyone who knows the device name could claim it: choose a secret")
                } else {
                    secret = Secret(value)
                }
            }
        case (false, true):
            if let value = r.nonEmptyString("secret_file", expected: "the path of a file holding the claiming secret") {
                let file = self.resolve(value)
                secretFile = file
                switch FileText.read(file) {
                case .failure(let reason):
                    r.report(
                        "secret_file",
                        "cannot read \"\(file)\" (\(reason)); write the claiming secret into it "
                            + "(`install -m 0640 -g tb-agent /dev/null \(file)`, then edit it) or set secret instead")
                case .success(let content):
                    let value = Secret.fromText(content)
                    if value.isEmpty {
                        r.report("secret_file", "\"\(file)\" is empty; write the claiming secret into it")
                    } else {
                        secret = value
                    }
                }
            }
        }
        let duration = r.duration("duration", range: ClaimingSettings.durationRange)
        guard let secret else { return }
        self.claiming = ClaimingSettings(secret: secret, secretFile: secretFile, duration: duration ?? ClaimingSettings.defaultDuration)
    }

    func checkCredentials(_ server: ServerSettings, _ provisioning: ProvisioningSettings, _ top: TableReader) {
        if provisioning.method == .x509Chain {
            if server.tls == nil {
                self.problems.report(
                    KeyPath(keys: "server", "tls"),
                    "missing; method = \"x509-chain\" connects over TLS with the certificate chain: add [server.tls] "
                        + "(ca_file = the CA of the server's certificate) and port = 8883")
            } else if server.tls?.certFile != nil || server.tls?.keyFile != nil {
                self.problems.report(
                    KeyPath(keys: "server", "tls"),
                    "cert_file and key_file conflict with method = \"x509-chain\", which connects with [provisioning] "
                        + "chain_file and key_file: remove them from [server.tls]")
            }
            return
        }
        guard provisioning.credentialsType == .x509Certificate else { return }
        if server.tls?.certFile == nil || server.tls?.keyFile == nil {
            self.problems.report(
                KeyPath(keys: "server", "tls"),
                "missing cert_file and key_file; credentials_type = \"X509_CERTIFICATE\" connects with the device "
                    + "certificate, so [server.tls] needs cert_file and key_file")
        }
    }

    func readDevice(_ r: TableReader?) {
        guard let r else { return }
        r.rejectUnknownKeys(["name_template", "sysroot", "state_dir", "board", "identity_sources"], section: "[device]")
        var device = DeviceSettings()
        if let template = r.nonEmptyString(
            "name_template", expected: "a name template like \"{id}\" or \"pi-{mac}\"")
        {
            do {
                _ = try NameTemplate(parsing: template)
                device.nameTemplate = template
            } catch {
                var hint = ""
                if let unknown = error.unknownPlaceholder {
                    hint = Suggestion.didYouMean(
                        "{\(unknown)}", NameTemplate.Placeholder.allCases.map { "{\($0.rawValue)}" }, quote: false)
                }
                r.report("name_template", "\"\(template)\": \(error.message)\(hint)")
            }
        }
        if let sysroot = r.nonEmptyString("sysroot", expected: "the path of the system root (\"/\" on a board)") {
            let resolved = self.resolve(sysroot)
            if FileText.isDirectory(resolved) {
                device.sysroot = resolved
            } else {
                r.report("sysroot", "\"\(resolved)\" is not a directory; expected \"/\" on a board, or a system-root tree")
            }
        }
        if let stateDir = r.nonEmptyString("state_dir", expected: "the path of the state folder") {
            device.stateDir = self.resolve(stateDir)
        }
        if let sources = r.table["identity_sources"] {
            let names = IdentitySource.allCases.map(\.rawValue)
            let expected = "an array of sources from " + names.map { "\"\($0)\"" }.joined(separator: ", ")
            if case .array(let items) = sources {
                var order: [IdentitySource] = []
                var valid = true
                for (index, item) in items.enumerated() {
                    let itemPath = r.keyPath("identity_sources").appending(index: index)
                    guard case .string(let text) = item, let source = IdentitySource(rawValue: text) else {
                        let list = names.map { "\"\($0)\"" }.joined(separator: ", ")
                        if case .string(let text) = item {
                            self.problems.report(
                                itemPath,
                                "\"\(text)\" is not an identity source: expected one of \(list)"
                                    + Suggestion.didYouMean(text, names))
                        } else {
                            self.problems.report(itemPath, "expected one of \(list), found \(item.found)")
                        }
                        valid = false
                        continue
                    }
                    if order.contains(source) {
                        self.problems.report(itemPath, "\"\(text)\" is listed twice")
                        valid = false
                    }
                    order.append(source)
                }
                if items.isEmpty {
                    r.report("identity_sources", "is empty; expected \(expected), like [\"serial\", \"mac\", \"machine_id\"]")
                } else if valid {
                    device.identitySources = order
                }
            } else {
                r.report("identity_sources", "expected \(expected), found \(sources.found)")
            }
        }
        if let board = r.nonEmptyString("board", expected: "a board profile name like \"raspberrypi-4b\"") {
            device.board = board
            let search = ConfigurationLoader.boardSearchPath(configurationPath: self.path)
            switch BoardProfiles.find(board, searchPath: search) {
            case .found(let profile):
                self.boardProfile = profile
            case .invalid(let problems):
                r.report("board", "the profile \"\(board)\" is invalid (see the problems in its file)")
                for problem in problems { self.problems.append(problem) }
            case .notFound(let known):
                let hint = Suggestion.didYouMean(board, known)
                let list = known.isEmpty ? "none found" : known.joined(separator: ", ")
                r.report(
                    "board",
                    "unknown board \"\(board)\"\(hint) (known boards: \(list); searched \(search.joined(separator: ", ")))")
            }
        }
        self.device = device
    }

    func readTelemetry(_ r: TableReader) {
        r.rejectUnknownKeys(["interval"], section: "[telemetry]")
        if let interval = r.duration("interval", range: .milliseconds(100) ... .seconds(86400)) {
            self.telemetry.interval = interval
        }
    }

    func readSpool(_ r: TableReader) {
        r.rejectUnknownKeys(["max_size", "segment_size", "sync_interval"], section: "[spool]")
        if let size = r.byteSize("max_size", range: (64 << 10)...(1 << 40)) { self.spool.maxBytes = size }
        if let size = r.byteSize("segment_size", range: (4 << 10)...(256 << 20)) { self.spool.segmentBytes = size }
        if self.spool.segmentBytes > self.spool.maxBytes / 2 {
            r.report("segment_size", "must be at most half of max_size (\(self.spool.maxBytes) bytes), so that dropping the oldest segment frees room")
        }
        if let interval = r.duration("sync_interval", range: .zero ... .seconds(60)) { self.spool.syncInterval = interval }
    }

    func readGPIO(_ r: TableReader) {
        r.rejectUnknownKeys(["backend", "simulated_dir"], section: "[gpio]")
        let expected = "one of \"libgpiod\", \"simulated\""
        guard let backend = r.string("backend", expected: expected) ?? (r.has("backend") ? nil : "libgpiod") else {
            return
        }
        switch backend {
        case "libgpiod":
            if r.has("simulated_dir") {
                r.report("simulated_dir", "applies only to backend = \"simulated\"; remove it or set backend = \"simulated\"")
            }
            self.gpio = GPIOSettings(backend: .libgpiod)
        case "simulated":
            guard r.has("simulated_dir") else {
                r.report(
                    "backend",
                    "backend = \"simulated\" needs simulated_dir = \"/path\", the folder holding one file per line")
                return
            }
            if let dir = r.nonEmptyString("simulated_dir", expected: "the path of the simulated GPIO folder") {
                self.gpio = GPIOSettings(backend: .simulated(directory: self.resolve(dir)))
            }
        default:
            r.report(
                "backend",
                "\"\(backend)\" is not valid: expected \(expected)\(Suggestion.didYouMean(backend, ["libgpiod", "simulated"]))")
        }
    }

    // MARK: lines, sensors, button, LED

    /// `line = "GPIO17"`, or `chip` + `offset`.
    func lineAddress(_ r: TableReader, required: Bool) -> LineAddress? {
        let hasLine = r.has("line"), hasChip = r.has("chip"), hasOffset = r.has("offset")
        let form = "line = \"GPIO17\" (a line name) or chip = \"pinctrl-bcm2711\" (the chip's label) with offset = 17"
        if hasLine && (hasChip || hasOffset) {
            r.report(hasChip ? "chip" : "offset", "set line, or chip and offset, not both")
            return nil
        }
        if hasLine {
            if case .integer(let n)? = r.table["line"] {
                r.report(
                    "line",
                    "expected a line name like \"GPIO\(n)\", found an integer (\(n)); lines are addressed by name, "
                        + "or by chip and offset, never by number")
                return nil
            }
            guard let name = r.nonEmptyString("line", expected: "a line name like \"GPIO17\"") else { return nil }
            if name.allSatisfy(\.isNumber) {
                r.report(
                    "line",
                    "\"\(name)\" is a number; write the line name (\"GPIO\(name)\") or use chip and offset")
                return nil
            }
            return .name(name)
        }
        if hasChip || hasOffset {
            var chip = r.nonEmptyString("chip", expected: "a chip label like \"pinctrl-rp1\" or a path like \"/dev/gpiochip0\"")
            if let number = chip, number.allSatisfy({ $0 >= "0" && $0 <= "9" }) {
                r.report(
                    "chip",
                    "\"\(number)\" is a chip number, and chip numbers change between kernels (the Raspberry Pi 5's header "
                        + "chip was gpiochip4, then gpiochip0); give the chip's label, like \"pinctrl-rp1\" "
                        + "(`tb-agent gpio list` shows them)")
                chip = nil
            }
            let offset = r.integer("offset", range: 0...1023, expected: "a line offset on the chip, from 0 to 1023")
            if !hasChip { r.report("offset", "needs chip = \"pinctrl-bcm2711\" (the chip's label, or its path) beside it") }
            if !hasOffset { r.report("chip", "needs offset = N (the line's offset on the chip) beside it") }
            guard let chip, let offset else { return nil }
            return .chipOffset(chip: chip, offset: offset)
        }
        if required { r.report("line", "missing; expected \(form)") }
        return nil
    }

    static let sensorKeys = [
        "name", "kind", "interval", "precision", "line", "chip", "offset", "bias", "active_low", "debounce",
        "report_as", "device", "channel", "zone", "scale",
    ]
    static let lineKeys = ["line", "chip", "offset", "bias", "active_low", "debounce"]

    static func keysApplying(to kind: SensorSettings.Kind) -> [String] {
        let common = ["name", "kind", "interval", "precision"]
        switch kind {
        case .gpio: return common + Self.lineKeys + ["report_as"]
        case .counter: return common + Self.lineKeys
        case .ds18b20: return common + ["device", "scale", "offset"]
        case .iio: return common + ["device", "channel", "scale", "offset"]
        case .thermal: return common + ["zone", "scale", "offset"]
        }
    }

    func readSensors(_ top: TableReader) {
        guard let node = top.table["sensors"] else { return }
        guard case .array(let items) = node else {
            top.report("sensors", "expected [[sensors]] tables (an array of tables), found \(node.found)")
            return
        }
        var names: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let path = KeyPath(keys: "sensors").appending(index: index)
            guard case .table(let table) = item else {
                self.problems.report(path, "expected a [[sensors]] table, found \(item.found)")
                continue
            }
            let r = TableReader(path: path, table: table, problems: self.problems)
            r.rejectUnknownKeys(Self.sensorKeys, section: "[[sensors]]")
            let name = r.requiredString("name", expected: "the sensor's name, also its telemetry key, like \"door\"")
            if let name {
                if name.first.map({ $0 == " " || $0 == "\t" }) == true || name.last.map({ $0 == " " || $0 == "\t" }) == true {
                    r.report("name", "\"\(name)\" has leading or trailing spaces; telemetry keys must match exactly")
                } else if let first = names[name] {
                    r.report("name", "\"\(name)\" is already the name of sensors[\(first)]; sensor names must be unique")
                } else {
                    names[name] = index
                }
            }
            guard r.has("kind") else {
                r.report(
                    "kind",
                    "missing required key; expected one of "
                        + SensorSettings.Kind.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
                continue
            }
            guard let kind = r.choice("kind", SensorSettings.Kind.self) else { continue }
            let applicable = Self.keysApplying(to: kind)
            for key in table.keys.sorted() where Self.sensorKeys.contains(key) && !applicable.contains(key) {
                r.report(
                    key,
                    "does not apply to kind = \"\(kind.rawValue)\" (keys for \(kind.rawValue): "
                        + "\(applicable.joined(separator: ", ")))")
            }
            var sensor = SensorSettings(name: name ?? "", kind: kind)
            sensor.interval = r.duration("interval", range: .milliseconds(100) ... .seconds(86400))
            sensor.precision = r.integer("precision", range: 0...10, expected: "a number of decimal places from 0 to 10")
            switch kind {
            case .gpio, .counter:
                sensor.line = self.lineAddress(r, required: true)
                sensor.bias = r.choice("bias", LineBias.self) ?? .asIs
                sensor.activeLow = r.bool("active_low") ?? false
                sensor.debounce = r.duration("debounce", range: .zero ... .seconds(10)) ?? .milliseconds(20)
                if kind == .gpio, r.has("report_as") {
                    switch r.string("report_as", expected: "\"bool\" or \"number\"") {
                    case "bool": sensor.reportAsNumber = false
                    case "number": sensor.reportAsNumber = true
                    case let other?:
                        r.report("report_as", "\"\(other)\" is not valid; expected \"bool\" or \"number\"")
                    case nil: break
                    }
                }
            case .ds18b20, .iio, .thermal:
                if kind == .iio {
                    sensor.device = r.requiredString("device", expected: "the IIO device name (iio:deviceN/name), like \"dht11\"")
                    sensor.channel = r.requiredString(
                        "channel", expected: "the IIO channel file, like \"in_humidityrelative_input\"")
                } else if kind == .ds18b20 {
                    sensor.device = r.nonEmptyString("device", expected: "a 1-Wire device id like \"28-0000075b3c2a\"")
                } else {
                    sensor.zone = r.nonEmptyString("zone", expected: "a thermal zone like \"thermal_zone0\"") ?? "thermal_zone0"
                }
                sensor.scale = r.number("scale", expected: "a number (the value is (raw + offset) × scale)") ?? 1
                sensor.offset = r.number("offset", expected: "a number (the value is (raw + offset) × scale)") ?? 0
            }
            if name != nil {
                self.sensors.append(sensor)
                self.sensorPaths.append(path)
            }
        }
    }

    func readButton(_ r: TableReader) {
        r.rejectUnknownKeys(["line", "chip", "offset", "active_low", "bias", "debounce", "reprovision_hold"], section: "[button]")
        let line = self.lineAddress(r, required: true)
        let activeLow = r.bool("active_low") ?? true
        let bias = r.choice("bias", LineBias.self) ?? .pullUp
        let debounce = r.duration("debounce", range: .zero ... .seconds(10)) ?? .milliseconds(50)
        let hold = r.duration("reprovision_hold", range: .seconds(1) ... .seconds(600)) ?? .seconds(5)
        guard let line else { return }
        self.button = ButtonSettings(line: line, activeLow: activeLow, bias: bias, debounce: debounce, reprovisionHold: hold)
    }

    func readLED(_ r: TableReader) {
        r.rejectUnknownKeys(["sysfs", "line", "chip", "offset", "active_low"], section: "[led]")
        let hasLine = r.has("line") || r.has("chip") || r.has("offset")
        if r.has("sysfs") && hasLine {
            r.report("sysfs", "set sysfs or line (or chip and offset), not both")
            return
        }
        if r.has("sysfs") {
            if r.has("active_low") {
                r.report("active_low", "applies only to a GPIO line; a sysfs LED knows its own polarity")
            }
            guard let name = r.nonEmptyString("sysfs", expected: "an LED name under /sys/class/leds, like \"ACT\"") else {
                return
            }
            if name.contains("/") {
                r.report("sysfs", "\"\(name)\" contains a slash; expected the LED's name only, like \"ACT\"")
                return
            }
            self.led = LEDSettings(target: .sysfs(name: name))
            return
        }
        guard hasLine else {
            self.problems.report(
                r.path, "missing sysfs or line; expected sysfs = \"ACT\" (a sysfs LED) or line = \"GPIO22\" (a GPIO output)")
            return
        }
        let activeLow = r.bool("active_low") ?? false
        guard let line = self.lineAddress(r, required: true) else { return }
        self.led = LEDSettings(target: .line(line), activeLow: activeLow)
    }

    /// Two users of one GPIO line would fight over it (libgpiod refuses the second request).
    func checkLinesUsedOnce() {
        var users: [(LineAddress, String)] = []
        func claim(_ line: LineAddress?, _ path: KeyPath, _ key: String) {
            guard let line else { return }
            if let other = users.first(where: { $0.0 == line }) {
                self.problems.report(path.appending(key), "\(line) is already used by \(other.1); each line can have one user")
            } else {
                users.append((line, path.description))
            }
        }
        for (sensor, path) in zip(self.sensors, self.sensorPaths) {
            claim(sensor.line, path, Self.lineKey(sensor.line))
        }
        claim(self.button?.line, KeyPath(keys: "button"), Self.lineKey(self.button?.line))
        if case .line(let line)? = self.led?.target { claim(line, KeyPath(keys: "led"), Self.lineKey(line)) }
    }

    static func lineKey(_ line: LineAddress?) -> String {
        if case .chipOffset? = line { return "offset" }
        return "line"
    }
}

extension FileText {
    /// Whether `path` is a readable regular file.
    static func readable(_ path: String) -> Result<Void, FileReadFailure> {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return .failure(FileReadFailure(errno == EACCES ? "permission denied" : "no such file"))
        }
        if info.st_mode & S_IFMT == S_IFDIR { return .failure(FileReadFailure("it is a directory")) }
        guard access(path, R_OK) == 0 else { return .failure(FileReadFailure("permission denied")) }
        return .success(())
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }
}
