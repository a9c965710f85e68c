import CMosquitto

#if canImport(Glibc)
import Glibc
#endif

/// A libmosquitto result code (`MOSQ_ERR_*`) and, for `MOSQ_ERR_ERRNO`, the `errno` that came with it.
public struct MosquittoError: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: CInt
    /// Set only for `MOSQ_ERR_ERRNO`.
    public let systemErrno: CInt?

    public init(rawValue: CInt, systemErrno: CInt? = nil) {
        self.rawValue = rawValue
        self.systemErrno = rawValue == Self.code(MOSQ_ERR_ERRNO) ? systemErrno : nil
    }

    static func code(_ value: mosq_err_t) -> CInt { CInt(value.rawValue) }

    public static let noMemory = Self(rawValue: code(MOSQ_ERR_NOMEM))
    public static let protocolError = Self(rawValue: code(MOSQ_ERR_PROTOCOL))
    public static let invalidArgument = Self(rawValue: code(MOSQ_ERR_INVAL))
    public static let noConnection = Self(rawValue: code(MOSQ_ERR_NO_CONN))
    public static let connectionRefused = Self(rawValue: code(MOSQ_ERR_CONN_REFUSED))
    public static let connectionLost = Self(rawValue: code(MOSQ_ERR_CONN_LOST))
    public static let tls = Self(rawValue: code(MOSQ_ERR_TLS))
    public static let payloadSize = Self(rawValue: code(MOSQ_ERR_PAYLOAD_SIZE))
    public static let lookup = Self(rawValue: code(MOSQ_ERR_EAI))
    public static let keepalive = Self(rawValue: code(MOSQ_ERR_KEEPALIVE))
    public static let malformedUTF8 = Self(rawValue: code(MOSQ_ERR_MALFORMED_UTF8))

    /// True for `MOSQ_ERR_ERRNO` with one of these errno values.
    public func isErrno(_ values: CInt...) -> Bool {
        guard let systemErrno else { return false }
        return values.contains(systemErrno)
    }

    /// The symbolic name, e.g. `MOSQ_ERR_CONN_LOST` or `ECONNREFUSED`.
    public var name: String {
        if let systemErrno { return Self.errnoName(systemErrno) }
        switch self.rawValue {
        case Self.code(MOSQ_ERR_NOMEM): return "MOSQ_ERR_NOMEM"
        case Self.code(MOSQ_ERR_PROTOCOL): return "MOSQ_ERR_PROTOCOL"
        case Self.code(MOSQ_ERR_INVAL): return "MOSQ_ERR_INVAL"
        case Self.code(MOSQ_ERR_NO_CONN): return "MOSQ_ERR_NO_CONN"
        case Self.code(MOSQ_ERR_CONN_REFUSED): return "MOSQ_ERR_CONN_REFUSED"
        case Self.code(MOSQ_ERR_NOT_FOUND): return "MOSQ_ERR_NOT_FOUND"
        case Self.code(MOSQ_ERR_CONN_LOST): return "MOSQ_ERR_CONN_LOST"
        case Self.code(MOSQ_ERR_TLS): return "MOSQ_ERR_TLS"
        case Self.code(MOSQ_ERR_PAYLOAD_SIZE): return "MOSQ_ERR_PAYLOAD_SIZE"
        case Self.code(MOSQ_ERR_NOT_SUPPORTED): return "MOSQ_ERR_NOT_SUPPORTED"
        case Self.code(MOSQ_ERR_AUTH): return "MOSQ_ERR_AUTH"
        case Self.code(MOSQ_ERR_ERRNO): return "MOSQ_ERR_ERRNO"
        case Self.code(MOSQ_ERR_EAI): return "MOSQ_ERR_EAI"
        case Self.code(MOSQ_ERR_KEEPALIVE): return "MOSQ_ERR_KEEPALIVE"
        case Self.code(MOSQ_ERR_MALFORMED_PACKET): return "MOSQ_ERR_MALFORMED_PACKET"
        case Self.code(MOSQ_ERR_MALFORMED_UTF8): return "MOSQ_ERR_MALFORMED_UTF8"
        case Self.code(MOSQ_ERR_OVERSIZE_PACKET): return "MOSQ_ERR_OVERSIZE_PACKET"
        default: return "MOSQ_ERR \(self.rawValue)"
        }
    }

    /// libmosquitto's text (`mosquitto_strerror`), or `strerror` for `MOSQ_ERR_ERRNO`.
    public var description: String {
        if let systemErrno, let text = strerror(systemErrno) {
            return "\(String(cString: text)) (\(self.name))"
        }
        guard let text = mosquitto_strerror(self.rawValue) else { return self.name }
        return "\(String(cString: text)) (\(self.name))"
    }

    static func errnoName(_ value: CInt) -> String {
        switch value {
        case ECONNREFUSED: return "ECONNREFUSED"
        case ECONNRESET: return "ECONNRESET"
        case ETIMEDOUT: return "ETIMEDOUT"
        case EHOSTUNREACH: return "EHOSTUNREACH"
        case ENETUNREACH: return "ENETUNREACH"
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
        case EPIPE: return "EPIPE"
        case EPROTO: return "EPROTO"
        case ENOENT: return "ENOENT"
        case EACCES: return "EACCES"
        case ENOMEM: return "ENOMEM"
        case EINVAL: return "EINVAL"
        default: return "errno \(value)"
        }
    }
}

/// Runs a libmosquitto call and throws its result code with the caller's `errno`.
@inline(__always)
func mosquittoCall(_ body: () -> CInt) throws(MosquittoError) {
    let code = body()
    guard code != MosquittoError.code(MOSQ_ERR_SUCCESS) else { return }
    throw MosquittoError(rawValue: code, systemErrno: errno)
}
