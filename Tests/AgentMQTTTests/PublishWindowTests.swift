import AgentMQTT
import AgentTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A one-connection MQTT server that answers the CONNECT, records each PUBLISH and sends PUBACKs only when told:
/// what a client has in flight is what it sent and this server has not acknowledged.
final class PublishRecorder: Sendable {
    struct Received: Sendable, Equatable {
        var topic: String
        var packetID: UInt16
    }

    struct State {
        var client: CInt = -1
        var received: [Received] = []
        var acknowledged = 0
    }

    /// Shared with the serving thread.
    final class Shared: Sendable {
        let state = Mutex(State())
    }

    let port: Int
    private let listener: CInt
    private let shared = Shared()
    private let thread: JoinableThread
    private let stopped = Mutex(false)

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            close(fd)
            throw TestSupportError("bind/listen failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        self.listener = fd
        let shared = self.shared
        do {
            self.thread = try JoinableThread { Self.serve(listener: fd, shared: shared) }
        } catch {
            close(fd)
            throw error
        }
    }

    /// Accepts one connection, answers its CONNECT and records its PUBLISHes until it closes or `stop()`.
    private static func serve(listener: CInt, shared: Shared) {
        let client = accept(listener, nil, nil)
        guard client >= 0 else { return }
        shared.state.withLock { $0.client = client }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { return }
            buffer += chunk[0..<n]
            while let (type, body, size) = Self.packet(in: buffer) {
                buffer.removeFirst(size)
                switch type >> 4 {
                case 1:  // CONNECT: accepted
                    _ = write(client, [UInt8]([0x20, 0x02, 0x00, 0x00]), 4)
                case 3:  // PUBLISH at QoS 1: topic, packet id, payload
                    let topicLength = Int(body[0]) << 8 | Int(body[1])
                    let topic = String(decoding: body[2..<(2 + topicLength)], as: UTF8.self)
                    let id = UInt16(body[2 + topicLength]) << 8 | UInt16(body[3 + topicLength])
                    shared.state.withLock { $0.received.append(Received(topic: topic, packetID: id)) }
                case 12:  // PINGREQ
                    _ = write(client, [UInt8]([0xD0, 0x00]), 2)
                case 14:  // DISCONNECT
                    return
                default:
                    break
                }
            }
        }
    }

    /// The first whole packet in `bytes`: its type byte, its body and its size.
    private static func packet(in bytes: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard bytes.count >= 2 else { return nil }
        var length = 0
        var shift = 0
        var index = 1
        while true {
            guard index < bytes.count else { return nil }
            length |= Int(bytes[index] & 0x7F) << shift
            index += 1
            if bytes[index - 1] & 0x80 == 0 { break }
            shift += 7
        }
        guard bytes.count >= index + length else { return nil }
        return (bytes[0], Array(bytes[index..<(index + length)]), index + length)
    }

    var received: [Received] { self.shared.state.withLock { $0.received } }
    var unacknowledged: Int { self.shared.state.withLock { $0.received.count - $0.acknowledged } }

    /// Sends PUBACKs for the oldest `count` unacknowledged PUBLISHes.
    func acknowledge(_ count: Int) {
        self.shared.state.withLock { state in
            let end = min(state.received.count, state.acknowledged + count)
            for received in state.received[state.acknowledged..<end] {
                _ = write(state.client, [UInt8]([0x40, 0x02, UInt8(received.packetID >> 8), UInt8(received.packetID & 0xFF)]), 4)
            }
            state.acknowledged = end
        }
    }

    func stop() {
        let first = self.stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(self.listener, CInt(SHUT_RDWR))
        self.shared.state.withLock { if $0.client >= 0 { shutdown($0.client, CInt(SHUT_RDWR)) } }
        self.thread.join()
        close(self.listener)
        self.shared.state.withLock { if $0.client >= 0 { close($0.client) } }
    }

    deinit { self.stop() }
}

/// `maxInFlight`: libmosquitto keeps at most that many PUBLISHes awaiting their PUBACK and sends the next one, in
/// order, when a PUBACK makes room. The run loop relies on it to hand over more than the window.
@Suite(.serialized) struct PublishWindowTests {
    @Test func publishesBeyondTheWindowWaitInTheClientAndLeaveInOrderAsPUBACKsCome() async throws {
        let server = try PublishRecorder()
        defer { server.stop() }
        var options = MQTTConnectOptions(host: "127.0.0.1", port: server.port, clientID: "window-test", connectTimeout: .seconds(5))
        options.maxInFlight = 3
        let client = try MosquittoClient(options)
        try await client.connect()
        let acknowledged = Mutex<[Int]>([])
        for i in 0..<10 {
            try client.submit("t/\(i)", payload: [UInt8(i)], qos: .atLeastOnce) { ok in
                if ok { acknowledged.withLock { $0.append(i) } }
            }
        }
        #expect(await Self.poll { server.received.count == 3 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(server.received.count == 3, "more than the window went out before a PUBACK")

        server.acknowledge(2)
        #expect(await Self.poll { server.received.count == 5 })
        #expect(await Self.poll { acknowledged.withLock { $0 } == [0, 1] })
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.unacknowledged == 3)

        while server.received.count < 10 || server.unacknowledged > 0 {
            server.acknowledge(1)
            #expect(server.unacknowledged <= 3)
            guard await Self.poll({ server.received.count == 10 || server.unacknowledged == 3 }) else { break }
        }
        #expect(server.received.map(\.topic) == (0..<10).map { "t/\($0)" })
        #expect(await Self.poll { acknowledged.withLock { $0 } == Array(0..<10) })
        await client.disconnect()
    }

    static func poll(_ condition: () -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }
}
