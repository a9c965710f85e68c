import AgentCore
import AgentMQTT
import AgentTestSupport
import Foundation
import Synchronization
import Testing

/// Collects a client's events in the background, so that tests can wait for one.
final class EventRecorder: Sendable {
    private final class Storage: Sendable {
        let events = Mutex<[MQTTEvent]>([])
        let finished = Mutex(false)
    }
    private let storage = Storage()

    init(_ client: MosquittoClient) {
        let storage = self.storage
        Task {
            for await event in client.events { storage.events.withLock { $0.append(event) } }
            storage.finished.withLock { $0 = true }
        }
    }

    var all: [MQTTEvent] { self.storage.events.withLock { $0 } }
    var isFinished: Bool { self.storage.finished.withLock { $0 } }
    var messages: [MQTTMessage] {
        self.all.compactMap { if case .message(let m) = $0 { return m } else { return nil } }
    }
    var disconnectReason: MQTTDisconnectReason? {
        for event in self.all { if case .disconnected(let reason) = event { return reason } }
        return nil
    }

    func waitUntil(timeout: Duration = .seconds(10), _ condition: @escaping @Sendable (EventRecorder) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(self)
    }
}

@Suite(.serialized) struct MosquittoClientTests {
    static func options(port: Int, clientID: String = "test-\(UInt32.random(in: 0...UInt32.max))") -> MQTTConnectOptions {
        MQTTConnectOptions(host: "127.0.0.1", port: port, clientID: clientID, connectTimeout: .seconds(5))
    }

    @Test func libraryVersionIsTwoPointSomething() {
        #expect(MosquittoClient.libraryVersion.hasPrefix("2."))
        #expect(MosquittoClient.libraryVersion.split(separator: ".").count == 3)
    }

    @Test func roundTripAtQoS0And1WithAcknowledgements() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let client = try MosquittoClient(Self.options(port: broker.port))
        let recorder = EventRecorder(client)
        try await client.connect()
        #expect(await recorder.waitUntil { $0.all.first == .connected(returnCode: .accepted) })

        let grant = try await client.subscribe("tb/test/#", qos: .atLeastOnce)
        #expect(grant.qos == .atLeastOnce)
        let zeroGrant = try await client.subscribe("tb/zero", qos: .atMostOnce)
        #expect(zeroGrant.qos == .atMostOnce)

        try await client.publish("tb/test/one", payload: Array("{\"a\":1}".utf8), qos: .atLeastOnce)
        try await client.publish("tb/zero", payload: Array("zero".utf8), qos: .atMostOnce)
        try await client.publish("tb/test/empty", payload: [], qos: .atLeastOnce)
        #expect(await recorder.waitUntil { $0.messages.count == 3 })
        let messages = recorder.messages
        #expect(messages.contains(MQTTMessage(topic: "tb/test/one", payload: Array("{\"a\":1}".utf8), qos: .atLeastOnce)))
        #expect(messages.contains(MQTTMessage(topic: "tb/zero", payload: Array("zero".utf8), qos: .atMostOnce)))
        #expect(messages.contains(MQTTMessage(topic: "tb/test/empty", payload: [], qos: .atLeastOnce)))

        // Many QoS 1 publishes in flight at once: each completes on its own PUBACK.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask { try await client.publish("tb/test/n\(i)", payload: Array("\(i)".utf8), qos: .atLeastOnce) }
            }
            try await group.waitForAll()
        }
        #expect(await recorder.waitUntil { $0.messages.count == 53 })

        await client.disconnect()
        #expect(await recorder.waitUntil { $0.isFinished })
        #expect(recorder.disconnectReason == .requested)
        await #expect(throws: MQTTError.notConnected) {
            try await client.publish("tb/test/late", payload: [1], qos: .atLeastOnce)
        }
    }

    @Test func connectingTwiceIsRefused() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let client = try MosquittoClient(Self.options(port: broker.port))
        try await client.connect()
        await #expect(throws: MQTTError.alreadyUsed) { try await client.connect() }
        await client.disconnect()
    }

    @Test func closedPortIsUnreachableAndNamesTheServer() async throws {
        let port = try TestSupport.freePort()
        let client = try MosquittoClient(Self.options(port: port))
        let recorder = EventRecorder(client)
        do {
            try await client.connect()
            Issue.record("connect to a closed port succeeded")
        } catch {
            guard case .unreachable(let endpoint, let cause) = error else {
                Issue.record("expected .unreachable, got \(error)")
                return
            }
            #expect(endpoint == ServerEndpoint(host: "127.0.0.1", port: port))
            #expect(cause.isErrno(ECONNREFUSED))
            #expect(error.agentError.code == .brokerUnavailable)
            #expect(error.description.contains("127.0.0.1:\(port)"))
            #expect(error.description.contains("[server] host and port"))
        }
        #expect(await recorder.waitUntil { $0.isFinished })
        guard case .connectFailed = recorder.disconnectReason else {
            Issue.record("expected .connectFailed, got \(String(describing: recorder.disconnectReason))")
            return
        }
    }

    @Test func silentCloseBeforeConnackHasItsOwnError() async throws {
        let server = try RawTCPServer(.closeImmediately)
        defer { server.stop() }
        let client = try MosquittoClient(Self.options(port: server.port))
        let recorder = EventRecorder(client)
        await #expect {
            try await client.connect()
        } throws: { error in
            guard let error = error as? MQTTError, case .closedBeforeConnack = error else { return false }
            return error.description.contains("without answering the CONNECT")
        }
        #expect(await recorder.waitUntil { $0.isFinished })
        await client.disconnect()
    }

    @Test func noConnackWithinTheTimeout() async throws {
        let server = try RawTCPServer(.holdSilently)
        defer { server.stop() }
        var options = Self.options(port: server.port)
        options.connectTimeout = .milliseconds(300)
        let client = try MosquittoClient(options)
        let recorder = EventRecorder(client)
        await #expect(throws: MQTTError.connectTimeout(ServerEndpoint(host: "127.0.0.1", port: server.port), .milliseconds(300))) {
            try await client.connect()
        }
        #expect(await recorder.waitUntil { $0.isFinished })
        #expect(recorder.disconnectReason == .aborted)
        await client.disconnect()
    }

    @Test func refusedConnackIsReportedOnceAndNotRetried() async throws {
        let passwordFile = try TestSupport.makeTemporaryDirectory("passwd").appendingPathComponent("passwd")
        let made = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/mosquitto_passwd"), ["-c", "-b", passwordFile.path, "device", "right"])
        try #require(made.status == 0, "mosquitto_passwd failed: \(made.stderr)")
        let broker = try MosquittoBroker(extraConfig: "allow_anonymous false\npassword_file \(passwordFile.path)\n")
        defer { broker.stop() }

        var options = Self.options(port: broker.port)
        options.username = Secret("device")
        options.password = Secret("wrong-password-123")
        let client = try MosquittoClient(options)
        let recorder = EventRecorder(client)
        var caught: MQTTError?
        do { try await client.connect() } catch { caught = error }
        let error = try #require(caught)
        guard case .refused(_, let code) = error else {
            Issue.record("expected .refused, got \(error)")
            return
        }
        #expect(code == .notAuthorized || code == .badUsernameOrPassword)
        #expect(error.agentError.code == .credentialsRejected)
        #expect(!error.description.contains("wrong-password-123"))
        #expect(await recorder.waitUntil { $0.isFinished })
        #expect(recorder.all.first == .connected(returnCode: code))
        #expect(recorder.disconnectReason == .refused(code))
        // libmosquitto would retry after a second; this client must not.
        try await Task.sleep(for: .milliseconds(2500))
        let log = broker.child.stderr + broker.child.stdout
        let attempts = log.components(separatedBy: "disconnected, not authorised").count - 1
        #expect(attempts == 1, "broker log:\n\(log)")
        await client.disconnect()

        // The right password connects.
        options.password = Secret("right")
        let good = try MosquittoClient(options)
        try await good.connect()
        await good.disconnect()
    }

    @Test func brokerGoingAwayEndsTheSessionAndFailsWaitingCalls() async throws {
        let broker = try MosquittoBroker()
        let client = try MosquittoClient(Self.options(port: broker.port))
        let recorder = EventRecorder(client)
        try await client.connect()
        broker.stop()
        #expect(await recorder.waitUntil { $0.isFinished })
        guard case .connectionLost = recorder.disconnectReason else {
            Issue.record("expected .connectionLost, got \(String(describing: recorder.disconnectReason))")
            return
        }
        await #expect(throws: MQTTError.notConnected) {
            try await client.publish("x", payload: [1], qos: .atLeastOnce)
        }
        await client.disconnect()
    }

    @Test func secretsStayOutOfDescriptions() throws {
        let options = MQTTConnectOptions(
            host: "h", port: 1, clientID: "c", username: Secret("token-as-user-name"), password: Secret("hunter2-password"))
        for text in ["\(options)", String(reflecting: options)] {
            #expect(!text.contains("hunter2-password"))
            #expect(!text.contains("token-as-user-name"))
        }
    }

    /// Polls without blocking a thread of the cooperative pool (other tests need them).
    static func poll(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    /// Issue 10, finding 3: any incoming payload was copied whatever its size (a 100 MB RPC: peak 325 MB). Above
    /// the limit it is now dropped in libmosquitto's callback, reported as `.oversized`, never copied; smaller
    /// messages still arrive, in order.
    @Test func oversizedIncomingMessagesAreDroppedInTheCallback() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        var options = Self.options(port: broker.port)
        options.maxIncomingPayload = 1024
        let client = try MosquittoClient(options)
        let events = Mutex<[MQTTEvent]>([])
        client.deliverEvents { event in events.withLock { $0.append(event) } }
        try await client.connect()
        _ = try await client.subscribe("big/#", qos: .atLeastOnce)
        let sender = try MosquittoClient(Self.options(port: broker.port))
        try await sender.connect()
        try await sender.publish("big/1", payload: [UInt8](repeating: 0x61, count: 1024), qos: .atLeastOnce)
        try await sender.publish("big/2", payload: [UInt8](repeating: 0x62, count: 200_000), qos: .atLeastOnce)
        try await sender.publish("big/3", payload: [0x63], qos: .atLeastOnce)
        #expect(await Self.poll { events.withLock { $0.count } >= 4 })
        let seen = events.withLock { $0 }
        #expect(seen.count == 4)
        guard seen.count == 4 else { return }
        #expect(seen[0] == .connected(returnCode: .accepted))
        if case .message(let m) = seen[1] { #expect(m.topic == "big/1" && m.payload.count == 1024) } else { Issue.record("\(seen[1])") }
        #expect(seen[2] == .oversized(topic: "big/2", bytes: 200_000))
        if case .message(let m) = seen[3] { #expect(m.topic == "big/3") } else { Issue.record("\(seen[3])") }
        await sender.disconnect()
        await client.disconnect()
    }

    /// A session that lives for years hands each server message to its sink the same way: the 120,000th costs what
    /// the first did. (A closure read out of a `Mutex` for each event came back wrapped in two more thunks each
    /// time: quadratic time, and the network thread's stack overflowed near 100,000 messages.)
    @Test func manyServerMessagesReachTheSinkInLinearTime() async throws {
        let broker = try MosquittoBroker(extraConfig: "max_queued_messages 0\n")
        defer { broker.stop() }
        let client = try MosquittoClient(Self.options(port: broker.port))
        let received = Atomic<Int>(0)
        client.deliverEvents { event in
            if case .message = event { received.add(1, ordering: .relaxed) }
        }
        try await client.connect()
        _ = try await client.subscribe("many/#", qos: .atLeastOnce)
        let sender = try MosquittoClient(Self.options(port: broker.port))
        try await sender.connect()
        let count = 120_000
        for i in 0..<count {
            _ = try sender.submit("many/\(i & 7)", payload: [UInt8(i & 0xff)], qos: .atLeastOnce, retain: false)
        }
        #expect(await Self.poll(timeout: .seconds(120)) { received.load(ordering: .relaxed) == count })
        await sender.disconnect()
        await client.disconnect()
    }

    /// The telemetry path: a completion callback per PUBLISH instead of a task, called exactly once: true on
    /// the PUBACK, false for the ones the session's end overtakes.
    @Test func publishCompletionCallbacksAreCalledOnceEach() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let client = try MosquittoClient(Self.options(port: broker.port))
        try await client.connect()
        let acknowledged = Atomic<Int>(0)
        for i in 0..<500 {
            try client.submit("t/\(i)", payload: [UInt8(i & 0xff)], qos: .atLeastOnce) { ok in
                if ok { acknowledged.add(1, ordering: .relaxed) }
            }
        }
        #expect(await Self.poll { acknowledged.load(ordering: .relaxed) == 500 })
        // Then a burst cut short: every callback still runs once, with false for what was not acknowledged.
        let ok = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        for i in 0..<2000 {
            try client.submit("u/\(i)", payload: [UInt8](repeating: 1, count: 512), qos: .atLeastOnce) { acked in
                if acked { ok.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
            }
        }
        client.closeNow()
        #expect(await Self.poll { ok.load(ordering: .relaxed) + failed.load(ordering: .relaxed) == 2000 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(ok.load(ordering: .relaxed) + failed.load(ordering: .relaxed) == 2000)
        await client.disconnect()
    }
}
