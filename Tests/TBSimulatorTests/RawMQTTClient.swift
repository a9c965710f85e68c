import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// MQTT packets built byte by byte, independent of the simulator's own encoder.
enum Packet {
    static func varint(_ value: Int) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        repeat {
            var b = UInt8(v % 128)
            v /= 128
            if v > 0 { b |= 0x80 }
            out.append(b)
        } while v > 0
        return out
    }

    static func string(_ s: String) -> [UInt8] { binary(Array(s.utf8)) }
    static func binary(_ b: [UInt8]) -> [UInt8] { [UInt8(b.count >> 8), UInt8(b.count & 0xFF)] + b }
    static func frame(_ first: UInt8, _ body: [UInt8]) -> [UInt8] { [first] + varint(body.count) + body }

    static func connect(level: UInt8 = 4, clientID: String = "test-client", username: String? = nil, password: String? = nil,
                        clean: Bool = true, keepAlive: UInt16 = 60) -> [UInt8] {
        var flags: UInt8 = clean ? 0x02 : 0
        if username != nil { flags |= 0x80 }
        if password != nil { flags |= 0x40 }
        var body = string(level == 3 ? "MQIsdp" : "MQTT") + [level, flags, UInt8(keepAlive >> 8), UInt8(keepAlive & 0xFF)]
        if level == 5 { body += [0] }
        body += string(clientID)
        if let username { body += string(username) }
        if let password { body += string(password) }
        return frame(0x10, body)
    }

    static func subscribe(_ packetID: UInt16, _ filters: [(String, UInt8)], v5: Bool = false) -> [UInt8] {
        var body: [UInt8] = [UInt8(packetID >> 8), UInt8(packetID & 0xFF)]
        if v5 { body += [0] }
        for (filter, qos) in filters { body += string(filter) + [qos] }
        return frame(0x82, body)
    }

    static func unsubscribe(_ packetID: UInt16, _ filters: [String], v5: Bool = false) -> [UInt8] {
        var body: [UInt8] = [UInt8(packetID >> 8), UInt8(packetID & 0xFF)]
        if v5 { body += [0] }
        for filter in filters { body += string(filter) }
        return frame(0xA2, body)
    }

    static func publish(_ topic: String, _ payload: String, qos: UInt8 = 1, packetID: UInt16 = 1, v5: Bool = false) -> [UInt8] {
        publish(topic, Array(payload.utf8), qos: qos, packetID: packetID, v5: v5)
    }

    static func publish(_ topic: String, _ payload: [UInt8], qos: UInt8 = 1, packetID: UInt16 = 1, v5: Bool = false) -> [UInt8] {
        var body = string(topic)
        if qos > 0 { body += [UInt8(packetID >> 8), UInt8(packetID & 0xFF)] }
        if v5 { body += [0] }
        body += payload
        return frame(0x30 | (qos << 1), body)
    }

    static func puback(_ packetID: UInt16) -> [UInt8] { [0x40, 2, UInt8(packetID >> 8), UInt8(packetID & 0xFF)] }
    static let pingreq: [UInt8] = [0xC0, 0]
    static let disconnect: [UInt8] = [0xE0, 0]
}

/// A packet as read from the socket.
struct ReceivedPacket: CustomStringConvertible {
    var first: UInt8
    var body: [UInt8]
    var type: UInt8 { self.first >> 4 }
    var qos: UInt8 { (self.first >> 1) & 0x03 }

    /// For PUBLISH: topic, packet id, payload (`v5` skips the properties).
    func publish(v5: Bool = false) -> (topic: String, packetID: UInt16?, payload: String) {
        let len = Int(self.body[0]) << 8 | Int(self.body[1])
        let topic = String(decoding: self.body[2..<2 + len], as: UTF8.self)
        var i = 2 + len
        var packetID: UInt16? = nil
        if self.qos > 0 {
            packetID = UInt16(self.body[i]) << 8 | UInt16(self.body[i + 1])
            i += 2
        }
        if v5 { i += 1 + Int(self.body[i]) }
        return (topic, packetID, String(decoding: self.body[i...], as: UTF8.self))
    }

    var description: String { "packet type \(self.type) flags \(self.first & 0x0F) body \(self.body)" }
}

/// A blocking MQTT client over a plain socket, for asserting exact bytes and close behaviour.
final class RawMQTTClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard self.fd >= 0 else { throw TestFailure("socket() failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(self.fd)
            throw TestFailure("connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
    }

    deinit { close(self.fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads more bytes: `nil` on timeout, empty on EOF or reset.
    private func fill(deadline: Date) -> [UInt8]? {
        let remaining = deadline.timeIntervalSinceNow
        if remaining <= 0 { return nil }
        var pfd = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(remaining * 1000) + 1)
        if ready == 0 { return nil }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return [] }
        return Array(chunk[0..<n])
    }

    enum ReadResult {
        case packet(ReceivedPacket)
        case closed
        case timeout
    }

    func read(timeout: TimeInterval = 5) -> ReadResult {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if self.buffer.count >= 2 {
                var multiplier = 1
                var length = 0
                var i = 1
                var complete = false
                while i < self.buffer.count && i <= 4 {
                    let b = self.buffer[i]
                    length += Int(b & 0x7F) * multiplier
                    multiplier *= 128
                    i += 1
                    if b & 0x80 == 0 {
                        complete = true
                        break
                    }
                }
                if complete && self.buffer.count >= i + length {
                    let packet = ReceivedPacket(first: self.buffer[0], body: Array(self.buffer[i..<i + length]))
                    self.buffer.removeFirst(i + length)
                    return .packet(packet)
                }
            }
            guard let more = self.fill(deadline: deadline) else { return .timeout }
            if more.isEmpty { return .closed }
            self.buffer += more
        }
    }

    /// The next packet, or a test failure naming what happened instead.
    func expectPacket(timeout: TimeInterval = 5, _ what: String = "a packet") throws -> ReceivedPacket {
        switch self.read(timeout: timeout) {
        case .packet(let p): return p
        case .closed: throw TestFailure("expected \(what), but the server closed the connection")
        case .timeout: throw TestFailure("expected \(what), but nothing arrived within \(timeout) s")
        }
    }

    /// True when the server closes the connection before sending anything more.
    func closesWithoutPacket(timeout: TimeInterval = 5) -> Bool {
        if case .closed = self.read(timeout: timeout) { return true }
        return false
    }

    /// Connects and returns the CONNACK (sessionPresent, return code).
    func connect(level: UInt8 = 4, clientID: String = "test-client", username: String? = nil, password: String? = nil,
                 clean: Bool = true) throws -> (sessionPresent: Bool, code: UInt8) {
        self.send(Packet.connect(level: level, clientID: clientID, username: username, password: password, clean: clean))
        let p = try self.expectPacket(timeout: 5, "CONNACK")
        guard p.type == 2, p.body.count >= 2 else { throw TestFailure("expected CONNACK, got \(p)") }
        return (p.body[0] & 1 == 1, p.body[1])
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
