/// What a board is configured to do: the model of `config.toml`, validated, with defaults filled in.
///
/// The TOML names are a contract with users and their scripts (see README, "Configuration"): the `tomlKey`
/// comments below give each field's name in the file. `AgentConfig` turns TOML into this model; nothing in here
/// reads a file.
public struct AgentConfiguration: Sendable, Equatable {
    public var server: ServerSettings
    public var provisioning: ProvisioningSettings
    public var device: DeviceSettings
    public var telemetry: TelemetrySettings
    /// `[spool]`: the offline spool on flash.
    public var spool: SpoolSettings = .init()
    public var gpio: GPIOSettings
    public var sensors: [SensorSettings]
    public var button: ButtonSettings?
    public var led: LEDSettings?
    /// The profile `[device] board` names, loaded from the board search path; nil without `board`.
    public var boardProfile: BoardProfile?
    /// `[claiming]`: nil without the table (no claims: `tb-agent claim` and the button gesture explain how to set it).
    public var claiming: ClaimingSettings?
    /// `[ota]`: firmware updates through ThingsBoard's OTA packages (defaults without the table).
    public var ota: OTASettings = .init()

    public init(
        server: ServerSettings, provisioning: ProvisioningSettings, device: DeviceSettings = .init(),
        telemetry: TelemetrySettings = .init(), gpio: GPIOSettings = .init(), sensors: [SensorSettings] = [],
        button: ButtonSettings? = nil, led: LEDSettings? = nil, boardProfile: BoardProfile? = nil
    ) {
        self.server = server
        self.provisioning = provisioning
        self.device = device
        self.telemetry = telemetry
        self.gpio = gpio
        self.sensors = sensors
        self.button = button
        self.led = led
        self.boardProfile = boardProfile
    }

    public static let defaultPath = "/etc/tb-agent/config.toml"
}

/// `[server]`
public struct ServerSettings: Sendable, Equatable {
    /// `host`
    public var host: String
    /// `port`: 1883 by default, 8883 when `[server.tls]` is present.
    public var port: Int
    /// `[server.tls]`
    public var tls: TLSSettings?
    /// `keepalive` (duration, default 60s). ThingsBoard closes a session after 600 s without any packet.
    public var keepalive: Duration
    /// `max_backoff` (duration, default 5m): the cap of the exponential backoff (full jitter) between connection
    /// and provisioning attempts.
    public var maxBackoff: Duration
    /// `rate_limits`: `"auto"` (default: ask the server with getSessionLimits, no limits assumed without an
    /// answer) or a table `[server.rate_limits]` with `messages`, `telemetry_messages`, `telemetry_data_points`
    /// (ThingsBoard's `"cap:seconds,…"` strings), `max_payload_size` and `max_inflight_messages`: the limits in force
    /// when the server does not answer (ThingsBoard before 3.8).
    public var rateLimits: RateLimitSettings

    public init(
        host: String, port: Int? = nil, tls: TLSSettings? = nil, keepalive: Duration = .seconds(60),
        maxBackoff: Duration = .seconds(300), rateLimits: RateLimitSettings = .auto
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? 1883 : 8883)
        self.tls = tls
        self.keepalive = keepalive
        self.maxBackoff = maxBackoff
        self.rateLimits = rateLimits
    }
}

/// `[server.tls]`
public struct TLSSettings: Sendable, Equatable {
    /// `ca_file`: PEM bundle that signs the server's certificate; nil uses the system's trust store.
    public var caFile: String?
    /// `cert_file`, `key_file`: the client certificate, for X509_CERTIFICATE credentials.
    public var certFile: String?
    public var keyFile: String?
    /// `verify_hostname` (default true). Turning it off is logged loudly at every start.
    public var verifyHostname: Bool

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verifyHostname: Bool = true) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.verifyHostname = verifyHostname
    }
}

/// How the device authenticates once provisioned (`[provisioning] credentials_type`).
public enum CredentialsType: String, Sendable, Equatable, CaseIterable, Codable {
    case accessToken = "ACCESS_TOKEN"
    case mqttBasic = "MQTT_BASIC"
    case x509Certificate = "X509_CERTIFICATE"
}

/// `[provisioning] method`: how the board gets its device credentials.
public enum ProvisioningMethod: String, Sendable, Equatable, CaseIterable {
    /// The default: a provision request with the device profile's key and secret (`device_key`, `device_secret`).
    case deviceKey = "device-key"
    /// No provision request: the board connects over TLS with a certificate chain, and ThingsBoard creates the
    /// device from the certificate's CN (a device profile of type X509_CERTIFICATE_CHAIN).
    case x509Chain = "x509-chain"
}

/// `[provisioning] method = "x509-chain"`: the files the board connects with and the profile's CN expression.
public struct X509ChainSettings: Sendable, Equatable {
    /// `chain_file`: PEM certificates, the device's (leaf) first, then the intermediates up to the profile's CA.
    public var chainFile: String
    /// `key_file`: the leaf's private key (PEM, unencrypted), mode 0600 and owned by the agent's user.
    public var keyFile: String
    /// `cn_regex` (default `(.*)`): the device profile's "CN regular expression"; group 1 is the device name.
    public var cnPattern: CommonNamePattern

    public init(chainFile: String, keyFile: String, cnPattern: CommonNamePattern) {
        self.chainFile = chainFile
        self.keyFile = keyFile
        self.cnPattern = cnPattern
    }
}

/// `[provisioning]`
public struct ProvisioningSettings: Sendable, Equatable {
    /// `method = "x509-chain"`: the chain settings (device_key and the other request keys are then empty and unused).
    public var x509Chain: X509ChainSettings?

    /// `method`
    public var method: ProvisioningMethod { self.x509Chain == nil ? .deviceKey : .x509Chain }

    /// `device_key`: the provision device key from the device profile.
    public var deviceKey: String
    /// `device_secret`, or read from `device_secret_file`.
    public var deviceSecret: Secret
    /// `device_secret_file`, when the secret came from a file (kept to say where it came from).
    public var deviceSecretFile: String?
    /// `credentials_type`: nil lets the server choose (an access token).
    public var credentialsType: CredentialsType?
    /// `token` (ACCESS_TOKEN): a token to ask for; empty lets the server generate one.
    public var token: Secret?
    /// `client_id`, `username`, `password` (MQTT_BASIC).
    public var clientId: String?
    public var username: String?
    public var password: Secret?
    /// `cert_file` (X509_CERTIFICATE): the PEM certificate sent as `hash`.
    public var certFile: String?
    /// `timeout` (default 30s): how long to wait for the provisioning response.
    public var timeout: Duration

    public init(
        deviceKey: String, deviceSecret: Secret, deviceSecretFile: String? = nil, credentialsType: CredentialsType? = nil,
        token: Secret? = nil, clientId: String? = nil, username: String? = nil, password: Secret? = nil,
        certFile: String? = nil, timeout: Duration = .seconds(30), x509Chain: X509ChainSettings? = nil
    ) {
        self.x509Chain = x509Chain
        self.deviceKey = deviceKey
        self.deviceSecret = deviceSecret
        self.deviceSecretFile = deviceSecretFile
        self.credentialsType = credentialsType
        self.token = token
        self.clientId = clientId
        self.username = username
        self.password = password
        self.certFile = certFile
        self.timeout = timeout
    }
}

/// Where an identity can come from, for `{id}` and `[device] identity_sources`.
public enum IdentitySource: String, Sendable, Equatable, CaseIterable, Codable {
    case serial
    case mac
    case machineId = "machine_id"
    case hostname
}

/// `[device]`
public struct DeviceSettings: Sendable, Equatable {
    /// `name_template` (default `"{id}"`).
    public var nameTemplate: String
    /// `sysroot` (default `/`): every hardware file is read below it.
    public var sysroot: String
    /// `state_dir` (default `/var/lib/tb-agent`).
    public var stateDir: String
    /// `board`: a profile name from `board/`, optional.
    public var board: String?
    /// `identity_sources` (default serial, mac, machine_id): the order `{id}` tries.
    public var identitySources: [IdentitySource]

    public static let defaultIdentitySources: [IdentitySource] = [.serial, .mac, .machineId]

    public init(
        nameTemplate: String = "{id}", sysroot: String = "/", stateDir: String = "/var/lib/tb-agent",
        board: String? = nil, identitySources: [IdentitySource] = DeviceSettings.defaultIdentitySources
    ) {
        self.nameTemplate = nameTemplate
        self.sysroot = sysroot
        self.stateDir = stateDir
        self.board = board
        self.identitySources = identitySources
    }
}

/// `[telemetry]`
public struct TelemetrySettings: Sendable, Equatable {
    /// `interval` (default 10s).
    public var interval: Duration

    public init(interval: Duration = .seconds(10)) { self.interval = interval }
}

/// `[gpio]`
public struct GPIOSettings: Sendable, Equatable {
    public enum Backend: Sendable, Equatable {
        /// `backend = "libgpiod"`: the kernel's GPIO character devices.
        case libgpiod
        /// `backend = "simulated"` with `simulated_dir`: one file per line holding 0 or 1.
        case simulated(directory: String)
    }
    public var backend: Backend

    public init(backend: Backend = .libgpiod) { self.backend = backend }
}

/// A GPIO line, addressed by name (`line = "GPIO17"`) or by chip and offset. Never by sysfs number.
public enum LineAddress: Sendable, Equatable, CustomStringConvertible {
    case name(String)
    /// `chip` is a label (`pinctrl-bcm2711`), a name (`gpiochip0`) or a path (`/dev/gpiochip0`).
    case chipOffset(chip: String, offset: Int)

    public var description: String {
        switch self {
        case .name(let n): return n
        case .chipOffset(let chip, let offset): return "\(chip) line \(offset)"
        }
    }
}

public enum LineBias: String, Sendable, Equatable, CaseIterable {
    case pullUp = "pull-up"
    case pullDown = "pull-down"
    case disable = "disable"
    case asIs = "as-is"
}

/// `[[sensors]]`
public struct SensorSettings: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case gpio, counter, ds18b20, iio, thermal
    }

    /// `name`: also the telemetry key.
    public var name: String
    /// `kind`
    public var kind: Kind
    /// `interval`: overrides `[telemetry] interval` for this sensor.
    public var interval: Duration?
    /// `precision`: decimal places to round to; nil keeps the source's full precision.
    public var precision: Int?

    // gpio, counter
    /// `line`, or `chip` + `offset`
    public var line: LineAddress?
    /// `bias` (default as-is)
    public var bias: LineBias
    /// `active_low` (default false)
    public var activeLow: Bool
    /// `debounce` (default 20ms for gpio and counter)
    public var debounce: Duration
    /// `report_as` = "bool" (default) | "number": `true`/`false` or 1/0 for gpio sensors.
    public var reportAsNumber: Bool

    // ds18b20, iio, thermal
    /// `device`: ds18b20 `28-…` id (nil: the first found) or the IIO device `name`.
    public var device: String?
    /// `channel`: the IIO channel file (`in_humidityrelative_input`).
    public var channel: String?
    /// `zone`: the thermal zone (default `thermal_zone0`).
    public var zone: String?
    /// `scale` (default 1) and `offset` (default 0): value = (raw + offset) × scale, as the IIO ABI defines.
    public var scale: Double
    public var offset: Double

    public init(
        name: String, kind: Kind, interval: Duration? = nil, precision: Int? = nil, line: LineAddress? = nil,
        bias: LineBias = .asIs, activeLow: Bool = false, debounce: Duration = .milliseconds(20),
        reportAsNumber: Bool = false, device: String? = nil, channel: String? = nil, zone: String? = nil,
        scale: Double = 1, offset: Double = 0
    ) {
        self.name = name
        self.kind = kind
        self.interval = interval
        self.precision = precision
        self.line = line
        self.bias = bias
        self.activeLow = activeLow
        self.debounce = debounce
        self.reportAsNumber = reportAsNumber
        self.device = device
        self.channel = channel
        self.zone = zone
        self.scale = scale
        self.offset = offset
    }
}

/// `[button]`
public struct ButtonSettings: Sendable, Equatable {
    /// `line`, or `chip` + `offset`
    public var line: LineAddress
    /// `active_low` (default true: a button to ground with a pull-up)
    public var activeLow: Bool
    /// `bias` (default pull-up)
    public var bias: LineBias
    /// `debounce` (default 50ms)
    public var debounce: Duration
    /// `reprovision_hold` (default 5s)
    public var reprovisionHold: Duration

    public init(
        line: LineAddress, activeLow: Bool = true, bias: LineBias = .pullUp, debounce: Duration = .milliseconds(50),
        reprovisionHold: Duration = .seconds(5)
    ) {
        self.line = line
        self.activeLow = activeLow
        self.bias = bias
        self.debounce = debounce
        self.reprovisionHold = reprovisionHold
    }
}

/// `[led]`: a sysfs LED (`sysfs = "ACT"`, under `sys/class/leds/` in the sysroot) or a GPIO output line.
public struct LEDSettings: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case sysfs(name: String)
        case line(LineAddress)
    }
    public var target: Target
    /// `active_low` (GPIO lines only, default false)
    public var activeLow: Bool

    public init(target: Target, activeLow: Bool = false) {
        self.target = target
        self.activeLow = activeLow
    }
}

/// `[claiming]`: what a claim request sends (ThingsBoard's `v1/devices/me/claim`).
public struct ClaimingSettings: Sendable, Equatable {
    /// `secret`, or read from `secret_file`: the secret a person types with the device name to claim the device.
    public var secret: Secret
    /// `secret_file`, when the secret came from a file.
    public var secretFile: String?
    /// `duration` (default 1h): the window in which a person can claim the device after a request.
    public var duration: Duration

    public static let defaultDuration: Duration = .seconds(3600)
    /// The shortest and longest window accepted.
    public static let durationRange: ClosedRange<Duration> = .seconds(10) ... .seconds(30 * 86_400)

    public init(secret: Secret, secretFile: String? = nil, duration: Duration = Self.defaultDuration) {
        self.secret = secret
        self.secretFile = secretFile
        self.duration = duration
    }
}
