import AgentCore
import Logging

/// Connecting as the device with stored credentials (thingsboard-device-api.md §2).
public enum DeviceConnection {
    /// The CONNECT for these credentials:
    /// - ACCESS_TOKEN: user name = token (the server ignores client id and password); client id = device name.
    /// - MQTT_BASIC: the stored client id (or the device name), user name and password.
    /// - X509_CERTIFICATE: TLS with the client certificate and key; needs `[server.tls]`.
    ///
    /// - Throws: `AgentError.invalidConfiguration` for X509_CERTIFICATE without TLS or without key and
    ///   certificate files.
    public static func connectOptions(
        for stored: StoredCredentials, server: ServerSettings, connectTimeout: Duration = .seconds(30)
    ) throws(AgentError) -> MQTTConnectOptions {
        try self.connectOptions(
            for: stored.credentials, deviceName: stored.deviceName, server: server, connectTimeout: connectTimeout)
    }

    /// The CONNECT for `credentials` issued to `deviceName` (see above).
    public static func connectOptions(
        for credentials: DeviceCredentials, deviceName: String, server: ServerSettings,
        connectTimeout: Duration = .seconds(30)
    ) throws(AgentError) -> MQTTConnectOptions {
        var tls = server.tls.map {
            MQTTTLSOptions(
                caFile: $0.caFile, certificateFile: nil, keyFile: nil, insecureSkipHostnameCheck: !$0.verifyHostname)
        }
        var options = MQTTConnectOptions(
            host: server.host, port: server.port, clientID: deviceName, keepalive: server.keepalive,
            cleanSession: true, tls: tls, connectTimeout: connectTimeout)
        switch credentials {
        case .accessToken(let token):
            options.username = token
        case .mqttBasic(let clientId, let username, let password):
            if let clientId { options.clientID = clientId }
            options.username = username.map(Secret.init)
            options.password = username == nil ? nil : password
        case .x509Certificate(_, let certificateFile, let keyFile):
            guard tls != nil else {
                throw AgentError(
                    .invalidConfiguration,
                    "X509_CERTIFICATE credentials need TLS: add [server.tls] (and the TLS port, usually 8883) to the configuration")
            }
            let certificate = certificateFile ?? server.tls?.certFile
            let key = keyFile ?? server.tls?.keyFile
            guard let certificate, let key else {
                throw AgentError(
                    .invalidConfiguration,
                    "X509_CERTIFICATE credentials need the client certificate and its key: set [server.tls] cert_file and key_file")
            }
            tls?.certificateFile = certificate
            tls?.keyFile = key
            options.tls = tls
        }
        return options
    }

    /// Connects once with the stored credentials, then disconnects: proves that the server accepts them.
    ///
    /// - Throws: `AgentError` — `.credentialsRejected` for CONNACK 5 (unknown or revoked) or 2 (unknown client
    ///   id), `.brokerUnavailable` for CONNACK 3, a silent close or an unreachable server, `.timeout`.
    public static func connectWithStoredCredentials(
        _ stored: StoredCredentials, server: ServerSettings, connectTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "tb-agent.mqtt")
    ) async throws(AgentError) {
        let (client, _) = try await Self.connected(stored, server: server, connectTimeout: connectTimeout, logger: logger)
        await client.disconnect()
    }

    /// Connects with the stored credentials, publishes the claim request at QoS 1, waits for its PUBACK (the only
    /// answer ThingsBoard gives) and disconnects.
    ///
    /// - Throws: `AgentError` as ``connectWithStoredCredentials(_:server:connectTimeout:logger:)``, and `.timeout`
    ///   when the PUBACK does not come within `connectTimeout`.
    public static func sendClaimRequest(
        _ request: ClaimRequest, stored: StoredCredentials, server: ServerSettings, connectTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "tb-agent.mqtt")
    ) async throws(AgentError) {
        let (client, endpoint) = try await Self.connected(stored, server: server, connectTimeout: connectTimeout, logger: logger)
        let clock = ContinuousClock()
        let start = clock.now
        let watchdog = Task {
            try? await Task.sleep(for: connectTimeout)
            if !Task.isCancelled { client.closeNow() }
        }
        do {
            try await client.publish(ClaimRequest.topic, payload: request.payload, qos: .atLeastOnce)
        } catch {
            watchdog.cancel()
            await client.disconnect()
            if clock.now - start >= connectTimeout {
                throw AgentError(
                    .timeout, "\(endpoint) did not acknowledge the claim request within \(DurationText.format(connectTimeout))")
            }
            throw error.agentError
        }
        watchdog.cancel()
        await client.disconnect()
    }

    /// A client connected with the stored credentials, and the server it is connected to; refuses credentials
    /// stored for another server.
    private static func connected(
        _ stored: StoredCredentials, server: ServerSettings, connectTimeout: Duration, logger: Logger
    ) async throws(AgentError) -> (MosquittoClient, ServerEndpoint) {
        let endpoint = ServerEndpoint(server)
        guard endpoint == stored.server else {
            throw AgentError(
                .invalidConfiguration,
                "the stored credentials belong to \(stored.server), but [server] is \(endpoint): provision for this server with `tb-agent provision`")
        }
        let options = try Self.connectOptions(for: stored, server: server, connectTimeout: connectTimeout)
        let client: MosquittoClient
        do {
            client = try MosquittoClient(options, logger: logger)
        } catch {
            throw error.agentError
        }
        do {
            try await client.connect()
        } catch {
            await client.disconnect()
            throw error.agentError(connectingWith: stored.credentials)
        }
        return (client, endpoint)
    }
}
