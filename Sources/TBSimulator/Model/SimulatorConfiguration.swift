/// Everything ``Simulator`` needs to start: listeners, tenant, timings, files.
public struct SimulatorConfiguration: Sendable {
    /// Listen address for both the MQTT and the control listener (loopback by default).
    public var host: String = "127.0.0.1"
    /// MQTT port; 0 picks a free one (read it back from ``Simulator/mqttPort``).
    public var mqttPort: Int = 1883
    /// MQTT over TLS port (ThingsBoard's 8883), where X.509 certificate chains provision devices; 0 picks a free one;
    /// `nil` (the default) disables the TLS listener. Needs ``tlsCertificateFile`` and ``tlsKeyFile``.
    public var mqttsPort: Int? = nil
    /// The TLS listener's certificate (PEM, the server's chain) and its unencrypted private key.
    public var tlsCertificateFile: String? = nil
    public var tlsKeyFile: String? = nil
    /// Control interface port; 0 picks a free one. `nil` disables the control interface.
    public var controlPort: Int? = 0
    /// Largest accepted MQTT remaining length (ThingsBoard's `netty.max_payload_size`).
    public var maxPacketSize: Int = 65536
    public var timings = Timings()
    /// Optional per-device rate limits; none by default.
    public var rateLimits = RateLimits()
    /// ThingsBoard's claiming settings (claiming allowed by default, 24 h window).
    public var claiming = ClaimingSettings()
    /// Bounds on OTA packages: size, count, total bytes, history kept per device.
    public var otaLimits = OtaBook.Limits()
    /// OTA packages uploaded and assigned at start.
    public var otaPackages: [OtaPackageSeed] = []
    public var profiles: [DeviceProfile] = []
    /// Pre-provisioned devices (added unless the registry file already knows the name).
    public var devices: [SimDevice] = []
    /// Registry file remembering devices across restarts; `nil` keeps them in memory only.
    public var registryPath: String? = nil
    /// JSON-lines event log path, `-` for standard output, `nil` for none.
    public var eventLogPath: String? = nil

    public init() {}

    /// Timeouts, ThingsBoard's defaults unless a test shortens them.
    public struct Timings: Sendable {
        /// The server closes a provision session this long after the response (60 s).
        public var provisionCloseDelay: Duration = .seconds(60)
        /// A client-side RPC nobody answers gets `{"error":"timeout"}` after this (60 s).
        public var clientRPCTimeout: Duration = .seconds(60)
        /// A session with no packets at all is closed after this (600 s).
        public var inactivityTimeout: Duration = .seconds(600)
        /// A server-side RPC sent at QoS 1 that is not acknowledged within this is marked timed out (10 s).
        public var rpcDeliveryTimeout: Duration = .seconds(10)
        /// Default wait for a device's reply to a server-side RPC pushed through the control interface (10 s).
        public var serverRPCTimeout: Duration = .seconds(10)

        public init() {}
    }
}
