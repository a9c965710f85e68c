import AgentTLS
import COpenSSL
import NIOCore

/// The server side of tb-sim's TLS listener: OpenSSL's `SSL_CTX` with the server certificate and key, asking every
/// client for a certificate (ThingsBoard's `setWantClientAuth(true)`) and accepting any: ThingsBoard's own logic
/// runs after the handshake, on the chain the client presented.
final class TLSServerContext: @unchecked Sendable {
    let context: OpaquePointer

    /// - Throws: ``SimulatorError`` naming the file and the fix when the certificate or key cannot be used.
    init(certificateFile: String, keyFile: String) throws(SimulatorError) {
        guard let method = TLS_server_method(), let context = SSL_CTX_new(method) else {
            throw SimulatorError("OpenSSL cannot create a TLS server context")
        }
        self.context = context
        guard SSL_CTX_use_certificate_chain_file(context, certificateFile) == 1 else {
            throw SimulatorError("[server] tls_cert_file \"\(certificateFile)\": \(Self.lastError()); it must be a readable PEM certificate (chain)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) == 1 else {
            throw SimulatorError("[server] tls_key_file \"\(keyFile)\": \(Self.lastError()); it must be a readable, unencrypted PEM private key")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw SimulatorError("[server] tls_key_file \"\(keyFile)\" is not the key of tls_cert_file \"\(certificateFile)\": use the key the certificate was made for")
        }
        // Want a client certificate but accept any (or none): the chain is judged afterwards, as ThingsBoard's trust
        // manager does.
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, { _, _ in 1 })
    }

    deinit { SSL_CTX_free(self.context) }

    static func lastError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "unknown OpenSSL error" }
        return OpenSSLText.error(code)
    }
}

/// What the TLS handshake learnt about the client, sent up the pipeline as a user event before any MQTT byte.
struct TLSClientIdentity: Sendable {
    /// The client's leaf certificate (PEM), nil when it presented none.
    let leafPEM: String?
    /// Whether the leaf is expired or not yet valid (ThingsBoard then answers CONNACK "not authorized").
    let leafOutsideValidity: Bool
}

/// TLS over a NIO channel with OpenSSL and two memory BIOs: ciphertext read from the socket goes into the read BIO,
/// plaintext comes out of `SSL_read` and goes on to the MQTT decoder; plaintext written by the MQTT encoder goes into
/// `SSL_write` and the ciphertext OpenSSL puts in the write BIO goes to the socket. The MQTT session code is the same
/// as on the plain listener. Nothing blocks: OpenSSL only ever sees memory.
final class TLSServerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let serverContext: TLSServerContext
    /// Runs ThingsBoard's validate-or-create on the presented chain (leaf first) once the handshake is done; false
    /// refuses the connection as ThingsBoard's trust manager does for a chain that is not a chain.
    private let onHandshake: ([X509Certificate]) -> Bool
    private var ssl: OpaquePointer?
    private var readBIO: OpaquePointer?
    private var writeBIO: OpaquePointer?
    private var handshakeDone = false
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []

    init(context: TLSServerContext, onHandshake: @escaping ([X509Certificate]) -> Bool) {
        self.serverContext = context
        self.onHandshake = onHandshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let ssl = SSL_new(self.serverContext.context), let readBIO = BIO_new(BIO_s_mem()),
              let writeBIO = BIO_new(BIO_s_mem()) else {
            context.close(promise: nil)
            return
        }
        SSL_set_bio(ssl, readBIO, writeBIO)  // the SSL owns both BIOs from now on
        SSL_set_accept_state(ssl)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let ssl = self.ssl { SSL_free(ssl) }
        self.ssl = nil
        self.readBIO = nil
        self.writeBIO = nil
        for (_, promise) in self.pendingWrites { promise?.fail(ChannelError.ioOnClosedChannel) }
        self.pendingWrites = []
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let ssl = self.ssl, let readBIO = self.readBIO else { return }
        var buffer = self.unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = BIO_write(readBIO, bytes.baseAddress! + offset, Int32(bytes.count - offset))
                if written <= 0 { break }
                offset += Int(written)
            }
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if !self.handshakeDone {
            ERR_clear_error()
            let result = SSL_do_handshake(ssl)
            if result != 1 {
                let error = SSL_get_error(ssl, result)
                self.flushCiphertext(context: context)
                if error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE {
                    ERR_clear_error()
                    context.close(promise: nil)
                }
                return
            }
            self.handshakeDone = true
            self.flushCiphertext(context: context)
            let chain = Self.peerChain(ssl)
            guard self.onHandshake(chain) else {
                context.close(promise: nil)
                return
            }
            let leaf = chain.first
            context.fireUserInboundEventTriggered(TLSClientIdentity(leafPEM: leaf?.pem, leafOutsideValidity: leaf?.isOutsideValidity ?? false))
            for (plaintext, promise) in self.pendingWrites { self.encrypt(context: context, plaintext, promise: promise) }
            self.pendingWrites = []
            context.flush()
        }
        self.readPlaintext(context: context, ssl: ssl)
    }

    private func readPlaintext(context: ChannelHandlerContext, ssl: OpaquePointer) {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            ERR_clear_error()
            let count = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if count > 0 {
                context.fireChannelRead(self.wrapInboundOut(context.channel.allocator.buffer(bytes: chunk[0..<Int(count)])))
                continue
            }
            let error = SSL_get_error(ssl, count)
            // Post-handshake messages (TLS 1.3 key updates) may need an answer.
            self.flushCiphertext(context: context)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { break }
            ERR_clear_error()
            // SSL_ERROR_ZERO_RETURN: the client's close_notify; anything else is a broken record.
            context.close(promise: nil)
            return
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = self.unwrapOutboundIn(data)
        guard self.handshakeDone else {
            self.pendingWrites.append((plaintext, promise))
            return
        }
        self.encrypt(context: context, plaintext, promise: promise)
    }

    private func encrypt(context: ChannelHandlerContext, _ plaintext: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let ssl = self.ssl else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var failed = false
        plaintext.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                ERR_clear_error()
                let written = SSL_write(ssl, bytes.baseAddress! + offset, Int32(bytes.count - offset))
                if written <= 0 {
                    failed = true
                    break
                }
                offset += Int(written)
            }
        }
        guard let writeBIO = self.writeBIO else { return }
        let ciphertext = OpenSSLText.drain(writeBIO)
        if failed {
            ERR_clear_error()
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: ciphertext)), promise: promise)
    }

    /// Sends what OpenSSL wrote into the write BIO (handshake records, alerts, session tickets).
    private func flushCiphertext(context: ChannelHandlerContext) {
        guard let writeBIO = self.writeBIO, tb_bio_pending(writeBIO) > 0 else { return }
        let bytes = OpenSSLText.drain(writeBIO)
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    /// The client's chain, leaf first. On a server `SSL_get_peer_cert_chain` leaves the leaf out.
    static func peerChain(_ ssl: OpaquePointer) -> [X509Certificate] {
        guard let leaf = SSL_get0_peer_certificate(ssl) else { return [] }
        var chain = [X509Certificate(borrowing: leaf)]
        if let stack = SSL_get_peer_cert_chain(ssl) {
            for index in 0..<tb_sk_x509_num(stack) {
                if let certificate = tb_sk_x509_value(stack, index) { chain.append(X509Certificate(borrowing: certificate)) }
            }
        }
        return chain
    }
}
