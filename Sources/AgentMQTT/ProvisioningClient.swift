import AgentCore
import Logging

/// Runs one ThingsBoard provisioning session over MQTT (thingsboard-device-api.md §1):
/// CONNECT as `provision` with a random client id and a clean session → SUBSCRIBE `/provision/response` at QoS 1
/// and wait for the SUBACK → PUBLISH the request at QoS 1 → wait for the answer (bounded by `timeout`) →
/// DISCONNECT.
///
/// The decisions are `ProvisioningSession`'s (pure, in the core); this type only moves bytes.
public struct ProvisioningClient: Sendable {
    public var server: ServerSettings
    /// How long to wait for the CONNACK, and then for the answer (`[provisioning] timeout`, 30 s by default).
    public var timeout: Duration
    public var logger: Logger

    public init(server: ServerSettings, timeout: Duration = .seconds(30), logger: Logger = Logger(label: "tb-agent.provisioning")) {
        self.server = server
        self.timeout = timeout
        self.logger = logger
    }

    /// A fresh client id for each session: `tb-agent-prov-` and 16 random hex digits.
    public static func randomClientID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return "tb-agent-prov-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The connection options of a provisioning session: user name `provision`, no password, keepalive 60 s,
    /// clean session, and TLS (server verified, no client certificate) when `[server.tls]` is present.
    public func connectOptions(clientID: String = ProvisioningClient.randomClientID()) -> MQTTConnectOptions {
        MQTTConnectOptions(
            host: self.server.host, port: self.server.port, clientID: clientID, username: Secret("provision"),
            password: nil, keepalive: .seconds(60), cleanSession: true,
            tls: self.server.tls.map {
                MQTTTLSOptions(caFile: $0.caFile, insecureSkipHostnameCheck: !$0.verifyHostname)
            },
            connectTimeout: self.timeout)
    }

    /// Asks the server for credentials once.
    ///
    /// - Parameters:
    ///   - request: what to send (validated by the caller with `ProvisionRequest.validate()`).
    ///   - certificateFile, keyFile: for X509_CERTIFICATE, the local files recorded with the issued certificate.
    /// - Returns: the credentials. Store them before using them: ThingsBoard never hands them out again.
    /// - Throws: `ProvisioningError`, one case per way of failing.
    public func provision(
        _ request: ProvisionRequest, certificateFile: String? = nil, keyFile: String? = nil
    ) async throws(ProvisioningError) -> DeviceCredentials {
        let endpoint = ServerEndpoint(self.server)
        let session = ProvisioningSession(
            request: request, server: endpoint, certificateFile: certificateFile, keyFile: keyFile)
        let options = self.connectOptions()
        self.logger.info(
            "Provisioning",
            metadata: [
                "device": "\(request.deviceName)", "server": "\(endpoint)", "mqtt.client_id": "\(options.clientID)",
                "credentials_type": "\(request.credentialsType?.rawValue ?? "(server's choice)")",
            ])
        let client: MosquittoClient
        do {
            client = try MosquittoClient(options, logger: self.logger)
        } catch {
            throw .connectFailed(error.agentError)
        }
        do {
            try await client.connect()
        } catch {
            await client.disconnect()
            throw .connectFailed(Self.connectError(error, endpoint: endpoint))
        }

        let timeout = self.timeout
        let result = await withTaskGroup(of: Step.self) { group in
            group.addTask { .finished(await Self.exchange(client: client, session: session)) }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return .timerCancelled }
                return .timerFired
            }
            var result: Result<DeviceCredentials, ProvisioningError>? = nil
            while let step = await group.next() {
                switch step {
                case .finished(let outcome):
                    if result == nil { result = outcome }
                    group.cancelAll()
                case .timerFired:
                    if result == nil {
                        var timedOut = session
                        if case .finish(let outcome) = timedOut.timedOut(after: timeout) { result = outcome }
                        // Ends the exchange: its waits fail and the event stream finishes.
                        client.closeNow()
                    }
                case .timerCancelled:
                    break
                }
            }
            return result ?? .failure(.timedOut(server: endpoint, after: timeout))
        }
        await client.disconnect()
        switch result {
        case .success(let credentials):
            self.logger.info(
                "Provisioned", metadata: ["device": "\(request.deviceName)", "credentials_type": "\(credentials.type.rawValue)"])
            return credentials
        case .failure(let error):
            self.logger.debug("Provisioning failed", metadata: ["error": "\(error)"])
            throw error
        }
    }

    private enum Step: Sendable {
        case finished(Result<DeviceCredentials, ProvisioningError>)
        case timerFired
        case timerCancelled
    }

    /// SUBSCRIBE, PUBLISH, then read events until the answer or the end of the session.
    private static func exchange(
        client: MosquittoClient, session: ProvisioningSession
    ) async -> Result<DeviceCredentials, ProvisioningError> {
        var session = session
        var action = session.connected()
        if case .subscribe(let topic, _) = action {
            do {
                let grant = try await client.subscribe(topic, qos: .atLeastOnce)
                action = session.subscribed(grantedQoS: [grant.rawValue])
            } catch {
                action = session.closed()
            }
        }
        if case .publish(let topic, let payload, _) = action {
            // A failed publish (the server closed the connection) is not the end yet: an answer sent just before
            // the close is already in the event stream.
            try? await client.publish(topic, payload: payload, qos: .atLeastOnce)
            action = .none
            for await event in client.events {
                switch event {
                case .message(let message):
                    action = session.received(topic: message.topic, payload: message.payload)
                case .disconnected:
                    action = session.closed()
                case .connected, .oversized:
                    action = .none
                }
                if case .finish = action { break }
            }
            if case .none = action { action = session.closed() }
        }
        if case .finish(let result) = action { return result }
        return .failure(.closedWithoutAnswer(server: session.server, afterPublish: session.phase == .awaitingAnswer))
    }

    /// A refused CONNACK in a provisioning session means the server does not take `provision` sessions.
    static func connectError(_ error: MQTTError, endpoint: ServerEndpoint) -> AgentError {
        guard case .refused(_, let code) = error else { return error.agentError }
        return AgentError(
            .provisioningFailed,
            "the server at \(endpoint) refused the provisioning connection (\(code)): ThingsBoard accepts every CONNECT with user name \"provision\"; is this ThingsBoard's MQTT transport?")
    }
}

/// The run loop's provisioning port over `ProvisioningClient`: one session with a request prepared at start.
public struct ConfiguredProvisioner: Provisioning {
    public let client: ProvisioningClient
    public let request: ProvisionRequest
    public let certificateFile: String?
    public let keyFile: String?

    public init(client: ProvisioningClient, request: ProvisionRequest, certificateFile: String?, keyFile: String?) {
        self.client = client
        self.request = request
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    public func provision() async -> Result<DeviceCredentials, AgentError> {
        do {
            return .success(try await self.client.provision(self.request, certificateFile: self.certificateFile, keyFile: self.keyFile))
        } catch {
            return .failure(error.agentError)
        }
    }
}
