import AgentCore
import Logging

/// The run loop's MQTT port (`DeviceLinks`) over libmosquitto: one `MosquittoClient` per session.
public struct MosquittoLinks: DeviceLinks {
    public let server: ServerSettings
    /// Incoming messages above this many bytes are dropped in libmosquitto's callback and reported.
    public let maxIncomingPayload: Int
    let logger: Logger

    public init(server: ServerSettings, maxIncomingPayload: Int = 64 * 1024, logger: Logger) {
        self.server = server
        self.maxIncomingPayload = maxIncomingPayload
        self.logger = logger
    }

    public func link(for credentials: DeviceCredentials, deviceName: String, inFlight: Int) throws(AgentError)
        -> any DeviceLink
    {
        var options = try DeviceConnection.connectOptions(for: credentials, deviceName: deviceName, server: self.server)
        options.maxIncomingPayload = self.maxIncomingPayload
        options.maxInFlight = inFlight
        do {
            return MosquittoLink(try MosquittoClient(options, logger: self.logger), credentials: credentials)
        } catch {
            // `.credentialsUnusable` (a client id or user name libmosquitto cannot send) maps to a rejection: those
            // credentials never work, which is no reason to retry for ever.
            throw error.agentError
        }
    }
}

/// One session over a `MosquittoClient`.
final class MosquittoLink: DeviceLink {
    let client: MosquittoClient
    let credentials: DeviceCredentials

    init(_ client: MosquittoClient, credentials: DeviceCredentials) {
        self.client = client
        self.credentials = credentials
    }

    func connect(events: @escaping @Sendable (LinkEvent) -> Void) async -> LinkConnectOutcome {
        self.client.deliverEvents { event in
            switch event {
            case .connected: break  // the outcome is connect()'s
            case .message(let message): events(.message(topic: message.topic, payload: message.payload))
            case .oversized(let topic, let bytes): events(.oversized(topic: topic, bytes: bytes))
            case .disconnected(let reason): events(.closed("\(reason)"))
            }
        }
        do {
            try await self.client.connect()
            return .connected
        } catch {
            let agentError = error.agentError(connectingWith: self.credentials)
            return agentError.code == .credentialsRejected ? .rejected(agentError.message) : .failed(agentError.message)
        }
    }

    func subscribe(_ filters: [String]) async throws(AgentError) -> [Bool] {
        var granted: [Bool] = []
        for filter in filters {
            do {
                granted.append(!(try await self.client.subscribe(filter, qos: .atLeastOnce)).isRefused)
            } catch {
                throw error.agentError
            }
        }
        return granted
    }

    func publish(_ topic: String, payload: [UInt8], done: (@Sendable (Bool) -> Void)?) throws(AgentError) {
        do {
            if let done {
                try self.client.submit(topic, payload: payload, qos: .atLeastOnce, done: done)
            } else {
                _ = try self.client.submit(topic, payload: payload, qos: .atLeastOnce, retain: false)
            }
        } catch {
            throw error.agentError
        }
    }

    func disconnect() async { await self.client.disconnect() }
}
