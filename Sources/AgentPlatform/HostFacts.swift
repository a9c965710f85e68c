#if canImport(Glibc)
import Glibc
#endif

/// Facts about the running system that the agent reports as client attributes.
public enum HostFacts {
    /// `uname -sr`, e.g. `Linux 6.1.0-28-arm64`.
    public static var kernel: String {
        var name = utsname()
        guard uname(&name) == 0 else { return "unknown" }
        func text<T>(_ field: inout T) -> String {
            withUnsafePointer(to: &field) { $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout<T>.size) { String(cString: $0) } }
        }
        return "\(text(&name.sysname)) \(text(&name.release))"
    }

    /// The IPv4 and IPv6 addresses of the interfaces that are up, except loopback, as `interface: address`.
    public static var ipAddresses: [String] {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var out: [String] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor?.pointee {
            defer { cursor = entry.ifa_next }
            guard let address = entry.ifa_addr, (entry.ifa_flags & UInt32(IFF_LOOPBACK)) == 0,
                (entry.ifa_flags & UInt32(IFF_UP)) != 0
            else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let name = entry.ifa_name.map { String(cString: $0) } ?? "?"
            out.append("\(name): \(String(cString: host))")
        }
        return out
    }
}
