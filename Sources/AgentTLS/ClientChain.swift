import COpenSSL

/// What the agent learns from its certificate chain before connecting with it (`[provisioning] method =
/// "x509-chain"`).
public struct ClientChainSummary: Sendable, Equatable {
    /// The device's (leaf) certificate in PEM form: what ThingsBoard stores as the device's X509_CERTIFICATE
    /// credentials.
    public let leafPEM: String
    /// The leaf's subject common name.
    public let commonName: String
    /// How many certificates the file holds (the leaf and its intermediates).
    public let certificateCount: Int
    /// The leaf's expiry, as OpenSSL prints it (`Jan  3 02:23:01 2027 GMT`).
    public let notAfter: String
}

/// Checks a certificate chain file and its private key with OpenSSL, each problem a sentence with its fix. The key's
/// contents never appear in a message (only its path).
public enum ClientChain {
    /// - Parameters:
    ///   - chainFile: PEM certificates, the leaf first.
    ///   - keyFile: the leaf's private key (PEM, unencrypted).
    /// - Returns: the summary, or the first problem found: unreadable files, no certificate, certificates out of
    ///   order, a key that is not the leaf's, a leaf that is expired or not valid yet, a leaf without CN.
    public static func inspect(chainFile: String, keyFile: String) -> Result<ClientChainSummary, ClientChainError> {
        let chain = Self.readCertificates(chainFile)
        defer { for certificate in chain { X509_free(certificate) } }
        guard let leaf = chain.first else {
            return .failure(ClientChainError(
                "\(chainFile) ([provisioning] chain_file) holds no PEM certificate (\(Self.lastError())): put the device's certificate there, then its intermediates, each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----"))
        }
        for index in chain.indices.dropFirst() {
            guard let key = X509_get0_pubkey(chain[index]), X509_verify(chain[index - 1], key) == 1 else {
                ERR_clear_error()
                return .failure(ClientChainError(
                    "in \(chainFile) ([provisioning] chain_file), certificate \(index + 1) did not sign certificate \(index): the file must list the device's certificate first, then the certificate that signed it, and so on up to (or below) the CA of the ThingsBoard device profile (`cat device.pem intermediate.pem > chain.pem`)"))
            }
        }
        guard let commonName = OpenSSLText.commonName(leaf) else {
            return .failure(ClientChainError(
                "the first certificate of \(chainFile) ([provisioning] chain_file) has no CN (common name): ThingsBoard names the device after it; issue the device's certificate with -subj \"/CN=DEVICE-NAME\""))
        }
        let notAfter = X509_get0_notAfter(leaf).map(Self.timeText) ?? "?"
        if let notBefore = X509_get0_notBefore(leaf), X509_cmp_current_time(notBefore) >= 0 {
            return .failure(ClientChainError(
                "the device's certificate in \(chainFile) is not valid before \(Self.timeText(notBefore)): this board's clock is probably behind (enable NTP: `timedatectl set-ntp true`), or the certificate was issued with a future start date"))
        }
        if let end = X509_get0_notAfter(leaf), X509_cmp_current_time(end) <= 0 {
            return .failure(ClientChainError(
                "the device's certificate in \(chainFile) (CN \(commonName)) expired on \(notAfter): ThingsBoard refuses it (CONNACK not authorized); issue a new one with the same CN from the profile's CA and replace \(chainFile)"))
        }
        guard let keyBIO = BIO_new_file(keyFile, "r") else {
            ERR_clear_error()
            return .failure(ClientChainError("cannot open the private key \(keyFile) ([provisioning] key_file): check the path and that the agent's user may read it"))
        }
        let key = PEM_read_bio_PrivateKey(keyBIO, nil, nil, nil)
        BIO_free(keyBIO)
        guard let key else {
            ERR_clear_error()
            return .failure(ClientChainError(
                "\(keyFile) ([provisioning] key_file) is not an unencrypted PEM private key: write the key the device's certificate was issued for (decrypt it with `openssl pkey -in KEY -out \(keyFile)`)"))
        }
        defer { EVP_PKEY_free(key) }
        guard X509_check_private_key(leaf, key) == 1 else {
            ERR_clear_error()
            return .failure(ClientChainError(
                "\(keyFile) ([provisioning] key_file) is not the private key of the device's certificate (CN \(commonName)) in \(chainFile): use the key the certificate was issued for, or issue a certificate for this key"))
        }
        return .success(ClientChainSummary(
            leafPEM: OpenSSLText.pem(leaf), commonName: commonName, certificateCount: chain.count, notAfter: notAfter))
    }

    static func readCertificates(_ path: String) -> [OpaquePointer] {
        ERR_clear_error()
        guard let bio = BIO_new_file(path, "r") else { return [] }
        defer { BIO_free(bio) }
        var out: [OpaquePointer] = []
        while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(certificate) }
        if !out.isEmpty { ERR_clear_error() }  // the end of the file reads as "no start line"
        return out
    }

    static func timeText(_ time: UnsafePointer<ASN1_TIME>) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "?" }
        defer { BIO_free(bio) }
        guard ASN1_TIME_print(bio, time) == 1 else { return "?" }
        return String(decoding: OpenSSLText.drain(bio), as: UTF8.self)
    }

    static func lastError() -> String {
        let code = ERR_peek_last_error()
        ERR_clear_error()
        guard code != 0 else { return "the file is empty or has no certificate" }
        return OpenSSLText.error(code)
    }
}

/// A problem with the certificate chain or its key, as a sentence with the fix.
public struct ClientChainError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
