import AgentCore
import AgentMQTT
import AgentTestSupport
import Foundation
import Synchronization
import TBJSON
import Testing

/// Plays ThingsBoard's side of provisioning on a plain mosquitto broker: reads `/provision/request` and answers
/// on `/provision/response` with whatever the test says (or nothing).
final class ProvisionResponder: Sendable {
    private final class Requests: Sendable {
        let payloads = Mutex<[[UInt8]]>([])
    }
    let client: MosquittoClient
    private let requests = Requests()

    init(port: Int, reply: @escaping @Sendable ([UInt8]) async -> [UInt8]?) async throws {
        self.client = try MosquittoClient(
            MQTTConnectOptions(host: "127.0.0.1", port: port, clientID: "responder-\(UInt32.random(in: 0...UInt32.max))"))
        try await self.client.connect()
        _ = try await self.client.subscribe(ProvisionRequest.requestTopic, qos: .atLeastOnce)
        let client = self.client
        let requests = self.requests
        Task {
            for await event in client.events {
                guard case .message(let message) = event, message.topic == ProvisionRequest.requestTopic else { continue }
                requests.payloads.withLock { $0.append(message.payload) }
                if let answer = await reply(message.payload) {
                    try? await client.publish(ProvisionRequest.responseTopic, payload: answer, qos: .atLeastOnce)
                }
            }
        }
    }

    var received: [[UInt8]] { self.requests.payloads.withLock { $0 } }

    func stop() async { await self.client.disconnect() }
}

@Suite(.serialized) struct ProvisioningClientTests {
    static let request = ProvisionRequest(
        deviceName: "rpi-0001", provisionDeviceKey: "key-123", provisionDeviceSecret: Secret("secret-456"))

    static func provision(
        answer: String?, request: ProvisionRequest = Self.request, timeout: Duration = .seconds(10)
    ) async throws -> (Result<DeviceCredentials, ProvisioningError>, [[UInt8]]) {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let responder = try await ProvisionResponder(port: broker.port) { _ in answer.map { Array($0.utf8) } }
        let client = ProvisioningClient(server: ServerSettings(host: "127.0.0.1", port: broker.port), timeout: timeout)
        let result: Result<DeviceCredentials, ProvisioningError>
        do {
            result = .success(try await client.provision(request))
        } catch {
            result = .failure(error)
        }
        await responder.stop()
        return (result, responder.received)
    }

    @Test func accessTokenIssuedAndRequestSentExactly() async throws {
        let (result, requests) = try await Self.provision(
            answer: #"{"credentialsValue":"tok-abc","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
        #expect(try result.get() == .accessToken(Secret("tok-abc")))
        #expect(requests.count == 1)
        #expect(requests.first.map { String(decoding: $0, as: UTF8.self) }
            == #"{"deviceName":"rpi-0001","provisionDeviceKey":"key-123","provisionDeviceSecret":"secret-456"}"#)
    }

    @Test func mqttBasicIssued() async throws {
        var request = Self.request
        request.credentialsType = .mqttBasic
        request.clientId = "cid"
        request.username = "user"
        request.password = Secret("pw")
        let (result, requests) = try await Self.provision(
            answer: #"{"credentialsValue":{"clientId":"cid","userName":"user","password":"pw"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#,
            request: request)
        #expect(try result.get() == .mqttBasic(clientId: "cid", username: "user", password: Secret("pw")))
        let sent = try JSONValue.parse(try #require(requests.first))
        #expect(sent["credentialsType"]?.stringValue == "MQTT_BASIC")
        #expect(sent["username"]?.stringValue == "user")
    }

    @Test func x509CertificateIssued() async throws {
        var request = Self.request
        request.credentialsType = .x509Certificate
        request.certificatePEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let (result, requests) = try await Self.provision(
            answer: #"{"credentialsValue":"MIIB","credentialsType":"X509_CERTIFICATE","status":"SUCCESS"}"#,
            request: request)
        #expect(try result.get() == .x509Certificate(certificate: "MIIB", certificateFile: nil, keyFile: nil))
        let sent = try JSONValue.parse(try #require(requests.first))
        #expect(sent["hash"]?.stringValue == request.certificatePEM)
    }

    @Test func notFoundAndFailureAreRefusals() async throws {
        let (notFound, _) = try await Self.provision(answer: #"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#)
        guard case .failure(let error) = notFound, case .notFound = error else {
            Issue.record("expected NOT_FOUND, got \(notFound)")
            return
        }
        #expect(error.agentError.code == .provisioningRefused)
        #expect(error.description.contains("provision key or secret"))

        let (failure, _) = try await Self.provision(answer: #"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#)
        guard case .failure(let error) = failure, case .failure(let name, _) = error else {
            Issue.record("expected FAILURE, got \(failure)")
            return
        }
        #expect(name == "rpi-0001")
        #expect(error.description.contains("rpi-0001"))
        #expect(error.description.contains("exists already"))
    }

    @Test func unparseableAndUnknownReplies() async throws {
        let (garbage, _) = try await Self.provision(answer: "this is not json")
        guard case .failure(.unparseableReply) = garbage else {
            Issue.record("expected unparseable, got \(garbage)")
            return
        }
        let (unknown, _) = try await Self.provision(answer: #"{"status":"MAYBE"}"#)
        #expect(unknown == .failure(.unknownStatus("MAYBE")))
    }

    @Test func withheldAnswerTimesOut() async throws {
        let (result, requests) = try await Self.provision(answer: nil, timeout: .milliseconds(400))
        #expect(requests.count == 1)
        guard case .failure(let error) = result, case .timedOut(_, let after) = error else {
            Issue.record("expected a timeout, got \(result)")
            return
        }
        #expect(after == .milliseconds(400))
        #expect(error.agentError.code == .timeout)
    }

    @Test func sessionClosedWithoutAnswer() async throws {
        let broker = try MosquittoBroker()
        // The "server" goes away as soon as the request arrives.
        let responder = try await ProvisionResponder(port: broker.port) { _ in
            broker.stop()
            return nil
        }
        let client = ProvisioningClient(server: ServerSettings(host: "127.0.0.1", port: broker.port), timeout: .seconds(10))
        do {
            _ = try await client.provision(Self.request)
            Issue.record("provisioning succeeded without an answer")
        } catch {
            #expect(error == .closedWithoutAnswer(server: ServerEndpoint(host: "127.0.0.1", port: broker.port), afterPublish: true))
            #expect(error.agentError.code == .provisioningFailed)
        }
        await responder.stop()
    }

    @Test func unreachableServerNamesHostAndPort() async throws {
        let port = try TestSupport.freePort()
        let client = ProvisioningClient(server: ServerSettings(host: "127.0.0.1", port: port), timeout: .seconds(5))
        do {
            _ = try await client.provision(Self.request)
            Issue.record("provisioning against a closed port succeeded")
        } catch {
            guard case .connectFailed(let agentError) = error else {
                Issue.record("expected connectFailed, got \(error)")
                return
            }
            #expect(agentError.code == .brokerUnavailable)
            #expect(agentError.message.contains("127.0.0.1:\(port)"))
            #expect(!error.description.contains("secret-456"))
        }
    }

    @Test func randomClientIDsDiffer() {
        let ids = Set((0..<20).map { _ in ProvisioningClient.randomClientID() })
        #expect(ids.count == 20)
        #expect(ids.allSatisfy { $0.hasPrefix("tb-agent-prov-") && $0.count == "tb-agent-prov-".count + 16 })
        let options = ProvisioningClient(server: ServerSettings(host: "h")).connectOptions()
        #expect(options.username == Secret("provision"))
        #expect(options.password == nil)
        #expect(options.cleanSession)
        #expect(options.keepalive == .seconds(60))
    }
}
