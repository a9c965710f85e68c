import NIOCore

/// tb-sim's MQTT decoder (Sources/TBSimulator/MQTT, compiled into this target): the bytes a client sends, read
/// packet by packet the way `MQTTDecoder.decode` does on a connection (the protocol level is learnt from CONNECT).
///
/// Properties: no crash; a fixed header is 2 to 5 bytes and its remaining length at most 268,435,455; a packet is
/// either decoded or refused with a message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMQTT(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: fuzzInput(data, size))
    var version: MQTTProtocolVersion? = nil
    while buffer.readableBytes > 0 {
        let header: (firstByte: UInt8, remainingLength: Int, headerLength: Int)?
        do {
            header = try MQTTDecoder.peekFixedHeader(buffer)
        } catch {
            require(!error.message.isEmpty, "an error without a message")
            return 0
        }
        guard let header else { return 0 }
        require(header.headerLength >= 2 && header.headerLength <= 5, "a fixed header of \(header.headerLength) bytes")
        require(header.remainingLength >= 0 && header.remainingLength <= 268_435_455, "remaining length \(header.remainingLength)")
        guard header.remainingLength <= 65536, buffer.readableBytes >= header.headerLength + header.remainingLength else {
            return 0
        }
        buffer.moveReaderIndex(forwardBy: header.headerLength)
        guard let body = buffer.readSlice(length: header.remainingLength) else { return 0 }
        do {
            let packet = try MQTTDecoder.decodePacket(firstByte: header.firstByte, body: body, version: version)
            if case .connect(let connect) = packet { version = connect.version }
        } catch {
            require(!error.message.isEmpty, "an error without a message")
            return 0
        }
    }
    return 0
}
