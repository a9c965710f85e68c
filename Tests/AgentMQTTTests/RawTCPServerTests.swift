import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test server itself: `stop()` must leave no thread that could still use its listener's descriptor number.
@Suite struct RawTCPServerTests {
    static func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw TestSupportError("connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
        return fd
    }

    /// Issue 9: the thread of a stopped `.closeImmediately` server, on its way back into `accept`, accepted on the
    /// next test's listener (given the same descriptor number) and closed its connection. Now `stop()` returns only
    /// once that thread has ended, wherever it was: blocked in `accept`, or just done with a connection.
    @Test(arguments: [RawTCPServer.Behaviour.closeImmediately, .holdSilently])
    func stopReturnsOnlyOnceTheAcceptingThreadHasEnded(_ behaviour: RawTCPServer.Behaviour) throws {
        // Blocked in accept().
        let idle = try RawTCPServer(behaviour)
        idle.stop()
        #expect(idle.acceptThreadEnded)

        // Right after serving a connection (the moment of the race).
        let busy = try RawTCPServer(behaviour)
        let client = try Self.connect(busy.port)
        defer { close(client) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)  // a failure, not a hang, if another thread took the connection
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var connect: [UInt8] = [0x10, 0x00]
        #expect(write(client, &connect, connect.count) == connect.count)
        if behaviour == .closeImmediately {
            var byte: UInt8 = 0
            #expect(read(client, &byte, 1) == 0, "the server closes the connection")
        } else {
            #expect(TestSupport.waitUntil(timeout: .seconds(10)) { busy.connectionCount == 1 })
        }
        busy.stop()
        #expect(busy.acceptThreadEnded)
    }
}
