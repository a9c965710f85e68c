import COpenSSL

/// Text out of OpenSSL objects, shared by the agent's checks and tb-sim's TLS listener: a memory BIO's bytes, an
/// error code's sentence, a certificate's PEM and common name.
public enum OpenSSLText {
    /// Everything a memory BIO holds (`BIO_read` until empty).
    public static func drain(_ bio: OpaquePointer) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
            if count <= 0 { break }
            out.append(contentsOf: chunk[0..<Int(count)])
        }
        return out
    }

    /// `ERR_error_string_n` of `code`, such as `error:0A000086:SSL routines::certificate verify failed`.
    public static func error(_ code: UInt) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first common name of an `X509 *`'s subject (UTF-8), nil when it has none.
    public static func commonName(_ certificate: OpaquePointer) -> String? {
        guard let name = X509_get_subject_name(certificate) else { return nil }
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index), let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>? = nil
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { CRYPTO_free(utf8, #fileID, #line) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    /// An `X509 *` in PEM form.
    public static func pem(_ certificate: OpaquePointer) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509(bio, certificate) == 1 else { return "" }
        return String(decoding: Self.drain(bio), as: UTF8.self)
    }
}
