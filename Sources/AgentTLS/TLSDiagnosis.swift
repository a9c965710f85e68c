import COpenSSL
import TextSearch

#if canImport(Glibc)
import Glibc
#endif

/// Finds out WHY a TLS connection failed, so that the message names the fix: libmosquitto only says "certificate
/// verify failed". One extra handshake with OpenSSL against the same server, with the same CA file and host name,
/// verifying nothing itself but reading the verification result afterwards (expired, wrong CA, wrong host name…).
///
/// AgentTLS is the only agent module that imports COpenSSL.
public enum TLSDiagnosis {
    /// A sentence naming the cause and the fix, or nil when the handshake could not even be tried or succeeded.
    ///
    /// The corresponding C functions are `SSL_connect` and `SSL_get_verify_result`.
    public static func diagnose(host: String, port: Int, caFile: String?, verifyHostname: Bool, timeoutSeconds: Int32 = 5)
        -> String?
    {
        guard let method = TLS_client_method(), let context = SSL_CTX_new(method) else { return nil }
        defer { SSL_CTX_free(context) }
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                return "the CA file \(caFile) could not be loaded as PEM certificates: check [server.tls] ca_file"
            }
        } else {
            _ = SSL_CTX_set_default_verify_paths(context)
        }
        // Complete the handshake whatever the certificate, then ask what verification concluded.
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        guard let ssl = SSL_new(context) else { return nil }
        defer { SSL_free(ssl) }
        let isAddress = Self.isIPAddress(host)
        if !isAddress { _ = tb_ssl_set_sni(ssl, host) }
        if verifyHostname, let parameters = SSL_get0_param(ssl) {
            if isAddress {
                _ = X509_VERIFY_PARAM_set1_ip_asc(parameters, host)
            } else {
                _ = X509_VERIFY_PARAM_set1_host(parameters, host, 0)
            }
        }
        let fd = Self.connect(host: host, port: port, timeoutSeconds: timeoutSeconds)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = SSL_set_fd(ssl, fd)
        ERR_clear_error()
        let connected = SSL_connect(ssl)
        if connected != 1 {
            let code = ERR_peek_last_error()
            if code == 0 {
                // No TLS error at all: the server just closed the connection on our ClientHello.
                ERR_clear_error()
                return "the server closed the connection during the TLS handshake: this port probably speaks plain MQTT (use the TLS port, usually 8883, or remove [server.tls]), or the server wants a client certificate ([server.tls] cert_file and key_file)"
            }
            ERR_clear_error()
            let text = OpenSSLText.error(code)
            if text.includes("wrong version number") || text.includes("packet length too long") {
                return "the server did not answer TLS on port \(port): this port probably speaks plain MQTT; use the TLS port (8883) or remove [server.tls]"
            }
            if text.includes("alert") && text.includes("certificate") {
                return "the server refused this board's client certificate (\(text)): check [server.tls] cert_file and key_file, and that the server trusts their CA"
            }
            return "the TLS handshake failed (\(text))"
        }
        let result = SSL_get_verify_result(ssl)
        guard result != X509_V_OK else { return nil }
        let reason = String(cString: X509_verify_cert_error_string(result))
        switch Int32(result) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "the server's certificate has expired (\(reason)): renew it on the server; if it looks valid, check this board's clock (`timedatectl`)"
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "the server's certificate is not valid yet (\(reason)): this board's clock is probably behind; enable NTP (`timedatectl set-ntp true`)"
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return "the server's certificate is not for \(host) (\(reason)): set [server] host to a name the certificate lists, or fix the certificate"
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
            X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED:
            return "the server's certificate is not signed by a trusted CA (\(reason)): set [server.tls] ca_file to the CA that signed it\(caFile.map { " (now \($0))" } ?? "")"
        default:
            return "the server's certificate did not verify (\(reason))"
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// A blocking TCP connection with a timeout, or -1.
    static func connect(host: String, port: Int, timeoutSeconds: Int32) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return -1 }
        defer { freeaddrinfo(list) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor?.pointee {
            cursor = entry.ai_next
            let fd = socket(entry.ai_family, entry.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), entry.ai_protocol)
            guard fd >= 0 else { continue }
            var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, entry.ai_addr, entry.ai_addrlen) == 0 { return fd }
            close(fd)
        }
        return -1
    }
}
