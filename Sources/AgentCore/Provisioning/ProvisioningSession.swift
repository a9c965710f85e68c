/// The decisions of one provisioning session, with no I/O: each input returns what to do next.
///
/// The order is ThingsBoard's (thingsboard-device-api.md §1): CONNECT as `provision` → SUBSCRIBE
/// `/provision/response` at QoS 1 and wait for the SUBACK → PUBLISH the request at QoS 1 → wait for the answer →
/// DISCONNECT. Once finished, every later input returns `.none`.
public struct ProvisioningSession: Sendable {
    public enum Action: Sendable, Equatable {
        case subscribe(topic: String, qos: Int)
        case publish(topic: String, payload: [UInt8], qos: Int)
        /// Disconnect, then report this result.
        case finish(Result<DeviceCredentials, ProvisioningError>)
        case none
    }

    public enum Phase: Sendable, Equatable {
        case connecting, subscribing, awaitingAnswer, finished
    }

    public private(set) var phase: Phase = .connecting
    public let request: ProvisionRequest
    public let server: ServerEndpoint
    public let certificateFile: String?
    public let keyFile: String?

    /// - Parameters:
    ///   - certificateFile, keyFile: for X509_CERTIFICATE, the local files stored with the issued certificate.
    public init(request: ProvisionRequest, server: ServerEndpoint, certificateFile: String? = nil, keyFile: String? = nil) {
        self.request = request
        self.server = server
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// CONNACK 0 arrived.
    public mutating func connected() -> Action {
        guard self.phase == .connecting else { return .none }
        self.phase = .subscribing
        return .subscribe(topic: ProvisionRequest.responseTopic, qos: 1)
    }

    /// The SUBACK arrived with these granted QoS values (0x80 = refused).
    public mutating func subscribed(grantedQoS: [Int]) -> Action {
        guard self.phase == .subscribing else { return .none }
        guard let granted = grantedQoS.first, granted == 0 || granted == 1 || granted == 2 else {
            return self.finish(.failure(.subscriptionRefused(server: self.server)))
        }
        self.phase = .awaitingAnswer
        return .publish(topic: ProvisionRequest.requestTopic, payload: self.request.payload, qos: 1)
    }

    /// A PUBLISH arrived. Anything but `/provision/response` is ignored.
    public mutating func received(topic: String, payload: [UInt8]) -> Action {
        guard self.phase == .awaitingAnswer || self.phase == .subscribing, topic == ProvisionRequest.responseTopic else {
            return .none
        }
        do {
            let credentials = try ProvisionResponse.credentials(
                from: payload, deviceName: self.request.deviceName, server: self.server,
                certificateFile: self.certificateFile, keyFile: self.keyFile)
            return self.finish(.success(credentials))
        } catch {
            return self.finish(.failure(error))
        }
    }

    /// The connection closed (or could not be opened) before the answer.
    public mutating func closed(connectError: AgentError? = nil) -> Action {
        switch self.phase {
        case .finished:
            return .none
        case .connecting:
            let error =
                connectError
                ?? AgentError(.brokerUnavailable, "the connection to \(self.server) closed before the CONNACK")
            return self.finish(.failure(.connectFailed(error)))
        case .subscribing:
            return self.finish(.failure(.closedWithoutAnswer(server: self.server, afterPublish: false)))
        case .awaitingAnswer:
            return self.finish(.failure(.closedWithoutAnswer(server: self.server, afterPublish: true)))
        }
    }

    /// The timeout passed.
    public mutating func timedOut(after timeout: Duration) -> Action {
        guard self.phase != .finished else { return .none }
        return self.finish(.failure(.timedOut(server: self.server, after: timeout)))
    }

    private mutating func finish(_ result: Result<DeviceCredentials, ProvisioningError>) -> Action {
        self.phase = .finished
        return .finish(result)
    }
}
