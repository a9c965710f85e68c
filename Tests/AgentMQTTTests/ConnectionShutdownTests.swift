import AgentCore
import Testing

@testable import AgentMQTT

#if canImport(Glibc)
import Glibc
#endif

/// `closeNow()` wakes the network thread by shutting the connection down. It used to read libmosquitto's
/// descriptor number and shut that number down, just after `mosquitto_disconnect` had woken the network thread to
/// close it: the number could meanwhile belong to another socket (shown by hand with a delay injected between the
/// two steps: an unrelated socket was shut down in 7 of 20 rounds). The client now holds a duplicate of the
/// socket, taken before the network thread starts, and shuts that down.
@Suite struct ConnectionShutdownTests {
    static func pair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw MQTTError.notConnected
        }
        return (fds[0], fds[1])
    }

    /// 0: end of stream (the other end was shut down); -1 with EAGAIN: open, nothing to read.
    static func peek(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
    }

    @Test func shutdownReachesTheClientsConnectionNotItsOldNumber() throws {
        let (_, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
        let context = CallbackContext(endpoint: ServerEndpoint(host: "127.0.0.1", port: 1883), maxIncomingPayload: 65536, continuation: continuation)
        // The client's connection: `library` stands for libmosquitto's descriptor, `server` for the far end.
        let (library, server) = try Self.pair()
        defer { close(server) }
        context.holdSocket(library)
        // The network thread closes its descriptor when the connection ends; another socket gets the number.
        close(library)
        let (other, otherPeer) = try Self.pair()  // the lowest free numbers: usually `library`'s is one of them
        let extra = other == library || otherPeer == library ? -1 : fcntl(other, F_DUPFD_CLOEXEC, library)
        defer { close(other); close(otherPeer); if extra >= 0 { close(extra) } }
        #expect([other, otherPeer, extra].contains(library), "the test could not put another socket on the freed number")

        context.shutdownConnection()
        #expect(Self.peek(server) == 0, "the client's connection was not shut down")
        for end in [other, otherPeer] {
            #expect(Self.peek(end) == -1 && errno == EAGAIN, "a socket that got the client's old number was shut down")
        }

        // Once the session has ended, there is nothing left to shut down.
        context.releaseSocket()
        context.shutdownConnection()
        for end in [other, otherPeer] { #expect(Self.peek(end) == -1 && errno == EAGAIN) }
        continuation.finish()
    }
}
