import NIOCore

/// Decodes the bytes a client sends into ``MQTTClientPacket``s, as Netty's `MqttDecoder` does for ThingsBoard.
///
/// The protocol level is learnt from the CONNECT packet; later packets are read with that level's layout (MQTT 5
/// adds reason codes and properties). Anything the decoder refuses (an unknown protocol level, a malformed packet,
/// a packet whose remaining length exceeds `maxPacketSize`) throws ``MQTTDecodeError``, and the session handler then
/// closes the connection, as ThingsBoard does: with nothing sent before a CONNECT was read or in MQTT 3, with
/// DISCONNECT 0x81 (malformed packet) in an MQTT 5 session.
public struct MQTTDecoder: ByteToMessageDecoder {
    public typealias InboundOut = MQTTClientPacket

    /// The level from the CONNECT packet, `nil` before it.
    public private(set) var version: MQTTProtocolVersion?
    /// The largest accepted remaining length (ThingsBoard's `netty.max_payload_size`, 65536 by default).
    public let maxPacketSize: Int

    public init(maxPacketSize: Int = 65536) {
        self.maxPacketSize = maxPacketSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let header = try Self.peekFixedHeader(buffer) else { return .needMoreData }
        if header.remainingLength > self.maxPacketSize {
            throw MQTTDecodeError(.tooLarge, "packet of \(header.remainingLength) bytes is over the limit of \(self.maxPacketSize)")
        }
        guard buffer.readableBytes >= header.headerLength + header.remainingLength else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: header.headerLength)
        guard let body = buffer.readSlice(length: header.remainingLength) else { return .needMoreData }
        let packet = try Self.decodePacket(firstByte: header.firstByte, body: body, version: self.version)
        if case .connect(let connect) = packet { self.version = connect.version }
        context.fireChannelRead(Self.wrapInboundOut(packet))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// The first byte, the remaining length and the size of the fixed header, or `nil` while it is incomplete.
    static func peekFixedHeader(_ buffer: ByteBuffer) throws(MQTTDecodeError) -> (firstByte: UInt8, remainingLength: Int, headerLength: Int)? {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        var multiplier = 1
        var value = 0
        var offset = 1
        while true {
            guard let byte = buffer.getInteger(at: buffer.readerIndex + offset, as: UInt8.self) else { return nil }
            offset += 1
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 { break }
            multiplier *= 128
            if offset > 4 { throw MQTTDecodeError(.malformed, "remaining length is longer than 4 bytes") }
        }
        return (first, value, offset)
    }

    /// Decodes one packet body. Pure, so that tests can call it without a channel.
    public static func decodePacket(firstByte: UInt8, body: ByteBuffer, version: MQTTProtocolVersion?) throws(MQTTDecodeError) -> MQTTClientPacket {
        var reader = Reader(buffer: body)
        let type = firstByte >> 4
        let flags = firstByte & 0x0F
        let v5 = version == .v5
        switch type {
        case 1:
            return .connect(try decodeConnect(&reader))
        case 3:
            let qos = (flags >> 1) & 0x03
            guard qos < 3 else { throw MQTTDecodeError(.malformed, "PUBLISH with QoS 3") }
            let topic = try reader.string()
            // Netty refuses a PUBLISH topic holding wildcards.
            guard !topic.contains("+") && !topic.contains("#") else {
                throw MQTTDecodeError(.malformed, "PUBLISH topic \"\(topic)\" contains wildcards")
            }
            let packetID: UInt16? = if qos > 0 { try reader.uint16() } else { nil }
            let properties: [MQTTProperty] = if v5 { try reader.properties() } else { [] }
            let payload = reader.rest()
            return .publish(MQTTPublish(topic: topic, payload: payload, qos: qos, retain: flags & 0x01 != 0,
                                        dup: flags & 0x08 != 0, packetID: packetID, properties: properties))
        case 4:
            let packetID = try reader.uint16()
            var reason = MQTTReasonCode.success
            if v5 && reader.remaining > 0 { reason = try reader.uint8() }
            return .puback(packetID: packetID, reasonCode: reason)
        case 5, 6, 7:
            if type == 6 && flags != 0x02 { throw MQTTDecodeError(.malformed, "PUBREL must have QoS 1 flags") }
            return .qos2Flow(type: type, packetID: try reader.uint16())
        case 8:
            guard flags == 0x02 else { throw MQTTDecodeError(.malformed, "SUBSCRIBE must have QoS 1 flags") }
            let packetID = try reader.uint16()
            if v5 { _ = try reader.properties() }
            var subscriptions: [MQTTSubscription] = []
            while reader.remaining > 0 {
                let filter = try reader.string()
                let options = try reader.uint8()
                subscriptions.append(MQTTSubscription(filter: filter, qos: options & 0x03))
            }
            return .subscribe(packetID: packetID, subscriptions: subscriptions)
        case 10:
            guard flags == 0x02 else { throw MQTTDecodeError(.malformed, "UNSUBSCRIBE must have QoS 1 flags") }
            let packetID = try reader.uint16()
            if v5 { _ = try reader.properties() }
            var filters: [String] = []
            while reader.remaining > 0 { filters.append(try reader.string()) }
            return .unsubscribe(packetID: packetID, filters: filters)
        case 12:
            return .pingreq
        case 14:
            var reason = MQTTReasonCode.success
            if v5 && reader.remaining > 0 { reason = try reader.uint8() }
            return .disconnect(reasonCode: reason)
        case 15 where v5:
            return .auth
        default:
            throw MQTTDecodeError(.malformed, "packet type \(type) is not one a client sends")
        }
    }

    static func decodeConnect(_ reader: inout Reader) throws(MQTTDecodeError) -> MQTTConnect {
        let name = try reader.string()
        let level = try reader.uint8()
        let version: MQTTProtocolVersion
        switch (name, level) {
        case ("MQIsdp", 3): version = .v3_1
        case ("MQTT", 4): version = .v3_1_1
        case ("MQTT", 5): version = .v5
        default:
            throw MQTTDecodeError(.unsupportedProtocolLevel, "unsupported protocol \"\(name)\" level \(level)")
        }
        let flags = try reader.uint8()
        if version != .v3_1 && flags & 0x01 != 0 {
            throw MQTTDecodeError(.malformed, "CONNECT reserved flag is set")
        }
        let keepAlive = try reader.uint16()
        let properties: [MQTTProperty] = if version == .v5 { try reader.properties() } else { [] }
        let clientID = try reader.string()
        // Netty enforces MQTT 3.1's 1-23 character client id; 3.1.1 and 5 accept any length.
        if version == .v3_1 && (clientID.utf8.isEmpty || clientID.count > 23) {
            throw MQTTDecodeError(.identifierRejected, "MQTT 3.1 client id must have 1 to 23 characters")
        }
        let hasWill = flags & 0x04 != 0
        if hasWill {
            if version == .v5 { _ = try reader.properties() }
            _ = try reader.string()
            _ = try reader.binary()
        }
        let username: String? = if flags & 0x80 != 0 { try reader.string() } else { nil }
        let password: [UInt8]? = if flags & 0x40 != 0 { try reader.binary() } else { nil }
        guard reader.remaining == 0 else { throw MQTTDecodeError(.malformed, "CONNECT has \(reader.remaining) bytes left over") }
        return MQTTConnect(version: version, clientID: clientID, cleanSession: flags & 0x02 != 0, keepAlive: keepAlive,
                           username: username, password: password, hasWill: hasWill, properties: properties)
    }

    /// Reads MQTT data types from a packet body, throwing on a short read.
    struct Reader {
        var buffer: ByteBuffer
        var remaining: Int { self.buffer.readableBytes }

        mutating func uint8() throws(MQTTDecodeError) -> UInt8 {
            guard let v = self.buffer.readInteger(as: UInt8.self) else { throw Self.short }
            return v
        }
        mutating func uint16() throws(MQTTDecodeError) -> UInt16 {
            guard let v = self.buffer.readInteger(as: UInt16.self) else { throw Self.short }
            return v
        }
        mutating func uint32() throws(MQTTDecodeError) -> UInt32 {
            guard let v = self.buffer.readInteger(as: UInt32.self) else { throw Self.short }
            return v
        }
        mutating func bytes(_ count: Int) throws(MQTTDecodeError) -> [UInt8] {
            guard let v = self.buffer.readBytes(length: count) else { throw Self.short }
            return v
        }
        mutating func binary() throws(MQTTDecodeError) -> [UInt8] {
            try self.bytes(Int(try self.uint16()))
        }
        mutating func string() throws(MQTTDecodeError) -> String {
            String(decoding: try self.binary(), as: UTF8.self)
        }
        mutating func variableInteger() throws(MQTTDecodeError) -> UInt32 {
            var value: UInt32 = 0
            var shift: UInt32 = 0
            for _ in 0..<4 {
                let byte = try self.uint8()
                value |= UInt32(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            throw MQTTDecodeError(.malformed, "variable byte integer longer than 4 bytes")
        }
        mutating func rest() -> [UInt8] {
            self.buffer.readBytes(length: self.buffer.readableBytes) ?? []
        }

        mutating func properties() throws(MQTTDecodeError) -> [MQTTProperty] {
            let length = Int(try self.variableInteger())
            guard let slice = self.buffer.readSlice(length: length) else { throw Self.short }
            var inner = Reader(buffer: slice)
            var result: [MQTTProperty] = []
            while inner.remaining > 0 {
                let id = UInt8(truncatingIfNeeded: try inner.variableInteger())
                switch id {
                case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
                    result.append(.byte(id: id, value: try inner.uint8()))
                case 0x13, 0x21, 0x22, 0x23:
                    result.append(.twoByte(id: id, value: try inner.uint16()))
                case 0x02, 0x11, 0x18, 0x27:
                    result.append(.fourByte(id: id, value: try inner.uint32()))
                case 0x0B:
                    result.append(.variableInteger(id: id, value: try inner.variableInteger()))
                case 0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F:
                    result.append(.string(id: id, value: try inner.string()))
                case 0x09, 0x16:
                    result.append(.binary(id: id, value: try inner.binary()))
                case 0x26:
                    let key = try inner.string()
                    result.append(.stringPair(id: id, key: key, value: try inner.string()))
                default:
                    throw MQTTDecodeError(.malformed, "unknown MQTT 5 property 0x\(String(id, radix: 16))")
                }
            }
            return result
        }

        static var short: MQTTDecodeError { MQTTDecodeError(.malformed, "packet ends early") }
    }
}
