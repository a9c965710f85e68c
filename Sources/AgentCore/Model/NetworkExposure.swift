/// Whether the MQTT traffic leaves this machine: the provision secret and the device's token travel in it, so
/// plain MQTT (no TLS) is only for a server on the same machine.
public enum NetworkExposure {
    /// True for a host that stays on this machine: `localhost` and names below it (`*.localhost`), 127.0.0.0/8,
    /// `::1`. Decided from the text alone (nothing is resolved): any other name may lead off the machine.
    public static func isLoopback(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "::1" || name == "0:0:0:0:0:0:0:1" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }),
            let first = Int(parts[0]), parts.compactMap({ Int($0) }).allSatisfy({ $0 <= 255 })
        else { return false }
        return first == 127
    }

    /// The warning for plain MQTT to a host that is not on this machine, naming the fix; nil with TLS or for a
    /// loopback host.
    public static func plaintextWarning(_ server: ServerSettings) -> String? {
        guard server.tls == nil, !Self.isLoopback(server.host) else { return nil }
        return "[server] \(server.host):\(server.port) is reached over plain MQTT (no [server.tls]): the provision secret and the device's token cross the network in clear. Use TLS: add a [server.tls] table (the system's CA certificates are used unless ca_file is set) and port = 8883"
    }
}
