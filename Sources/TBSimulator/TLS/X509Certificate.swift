import AgentTLS
import COpenSSL

/// An X.509 certificate held by OpenSSL (`X509 *`, reference counted), with what tb-sim needs of it: its PEM, its
/// common name, its validity and signatures.
final class X509Certificate: @unchecked Sendable {
    let pointer: OpaquePointer

    /// Takes one reference of `pointer` (the caller gives it up).
    init(owning pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Adds a reference to a certificate OpenSSL keeps (the peer's, in a chain).
    convenience init(borrowing pointer: OpaquePointer) {
        X509_up_ref(pointer)
        self.init(owning: pointer)
    }

    deinit { X509_free(self.pointer) }

    /// Every certificate of a PEM text, in order.
    ///
    /// - Throws: ``SimulatorError`` when the text holds no certificate.
    static func parseAll(pem: String, what: String) throws(SimulatorError) -> [X509Certificate] {
        let bytes = Array(pem.utf8)
        guard let bio = bytes.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw SimulatorError("\(what): cannot allocate an OpenSSL buffer")
        }
        defer { BIO_free(bio) }
        var out: [X509Certificate] = []
        while let cert = PEM_read_bio_X509(bio, nil, nil, nil) {
            out.append(X509Certificate(owning: cert))
        }
        ERR_clear_error()
        guard !out.isEmpty else {
            throw SimulatorError("\(what) holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\" … \"-----END CERTIFICATE-----\")")
        }
        return out
    }

    /// The certificate in PEM form, as ThingsBoard stores X509_CERTIFICATE credentials.
    var pem: String { OpenSSLText.pem(self.pointer) }

    /// The subject's common name (UTF-8), or nil when the subject has none.
    var commonName: String? { OpenSSLText.commonName(self.pointer) }

    /// Whether the current time is outside the certificate's validity (Java's `checkValidity`).
    var isOutsideValidity: Bool {
        guard let notBefore = X509_get0_notBefore(self.pointer), let notAfter = X509_get0_notAfter(self.pointer) else { return true }
        return X509_cmp_current_time(notBefore) >= 0 || X509_cmp_current_time(notAfter) <= 0
    }

    /// Whether `issuer`'s public key verifies this certificate's signature (Java's `cert.verify(issuer.getPublicKey())`).
    func isSigned(by issuer: X509Certificate) -> Bool {
        guard let key = X509_get0_pubkey(issuer.pointer) else { return false }
        let result = X509_verify(self.pointer, key)
        ERR_clear_error()
        return result == 1
    }

    /// Whether this certificate chains to `anchor` through `intermediates` (OpenSSL's `X509_verify_cert`, the anchor
    /// trusted even when it is an intermediate CA). Validity dates are not checked here: ThingsBoard checks only the
    /// leaf's, at CONNECT.
    func verifies(to anchor: X509Certificate, intermediates: [X509Certificate]) -> Bool {
        guard let store = X509_STORE_new() else { return false }
        defer { X509_STORE_free(store) }
        guard X509_STORE_add_cert(store, anchor.pointer) == 1 else { return false }
        _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_PARTIAL_CHAIN) | UInt(X509_V_FLAG_NO_CHECK_TIME))
        guard let context = X509_STORE_CTX_new() else { return false }
        defer { X509_STORE_CTX_free(context) }
        guard let untrusted = tb_sk_x509_new() else { return false }
        defer { tb_sk_x509_free(untrusted) }
        for certificate in intermediates { _ = tb_sk_x509_push(untrusted, certificate.pointer) }
        guard X509_STORE_CTX_init(context, store, self.pointer, untrusted) == 1 else { return false }
        let result = X509_verify_cert(context)
        ERR_clear_error()
        return withExtendedLifetime(intermediates) { result == 1 }
    }
}
